"""Answers sent the moment they are written.

Twisted's TCP transport keeps every write in its buffer and sends it when
the reactor next finds the socket writable: for each answer, a system call
to have the socket watched for writing (``epoll_ctl``), the send, then
another to stop watching it.  An answer is a few kB, and the socket's send
buffer is nearly always empty when it is written, so :func:`send_now` sends
it straight away and hands Twisted only what the socket did not take.
"""

from __future__ import annotations

from twisted.internet import tcp


def send_now(transport, data: bytes) -> None:
    """Write ``data`` on ``transport``: sent at once on a plain TCP
    connection whose buffer is empty, the rest (or all, when the send
    failed) left to the transport's own ``write``.  Bytes already waiting in
    the transport's buffer go first: they are never overtaken.  Any other
    transport (TLS, a test's) gets a plain ``write``."""
    if data and _sendable_now(transport):
        sent = transport.writeSomeData(data)
        if not isinstance(sent, int):  # the connection is lost: Twisted's write finds out
            transport.write(data)
        elif sent < len(data):
            transport.write(data[sent:])
        return
    transport.write(data)


def _sendable_now(transport) -> bool:
    """Whether ``transport`` is a plain TCP connection, open, with nothing
    in its buffer (Twisted's two buffers: the bytes being sent and the
    writes queued behind them)."""
    return (isinstance(transport, tcp.Connection) and not transport.TLS
            and transport.connected and not transport.disconnecting
            and not transport.dataBuffer and not getattr(transport, "_tempDataBuffer", True))
