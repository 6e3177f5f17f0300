"""``ivr-serve``'s socket and access log: a listen queue that holds 1,000
connections at once, and no token in the access log."""

import select
import socket
import time
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from ivr.server import tap

ROOT = Path(__file__).parent.parent
DASHBOARD_TOKEN = "a-dashboard-token-of-24-chars"


def _service(tmp_path, *flags):
    reactor = MemoryReactorClock()
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), *flags])
    top = tap.makeService(options, reactor)
    top.startService()
    return top, reactor


@pytest.mark.parametrize("listen, backlog", [
    ("tcp:0:interface=127.0.0.1", tap.DEFAULT_BACKLOG),
    ("tcp:0:interface=127.0.0.1:backlog=77", 77),
    ("tcp:interface=127.0.0.1:port=0", tap.DEFAULT_BACKLOG),
])
def test_the_server_listens_with_a_deep_queue_unless_told_otherwise(tmp_path, listen, backlog):
    top, reactor = _service(tmp_path, "--listen", listen)
    try:
        [(_port, _site, got, interface)] = reactor.tcpServers
        assert (got, interface) == (backlog, "127.0.0.1")
    finally:
        top.stopService()


def test_the_default_listen_queue_is_deeper_than_twisteds():
    assert tap.with_backlog("tcp:8080:interface=127.0.0.1") == \
        f"tcp:8080:interface=127.0.0.1:backlog={tap.DEFAULT_BACKLOG}"
    assert tap.DEFAULT_BACKLOG >= 1000 > 50
    assert tap.with_backlog("systemd:domain=INET:index=0") == "systemd:domain=INET:index=0"


def _connected_at_once(backlog: int, clients: int = 1000, wait: float = 0.5) -> int:
    """How many of ``clients`` connections opened at once to a socket that
    accepts none (a busy server) are established within ``wait`` seconds:
    the kernel completes only as many as the listen queue holds, and the
    others wait for a SYN retry (one second or more), or time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    sockets = []
    try:
        for _ in range(clients):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(server.getsockname())
            sockets.append(client)
        poller = select.poll()
        by_fd = {client.fileno(): client for client in sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLOUT)
        deadline, done = time.monotonic() + wait, set()
        while len(done) < clients and time.monotonic() < deadline:
            for fd, _event in poller.poll(50):
                poller.unregister(fd)
                if by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done.add(fd)
        return len(done)
    finally:
        for client in sockets:
            client.close()
        server.close()


def test_a_thousand_connections_at_once_all_get_in_with_the_default_backlog():
    assert _connected_at_once(tap.DEFAULT_BACKLOG) == 1000
    # Twisted's default of 50 leaves most of them waiting for a SYN retry.
    assert _connected_at_once(50) < 200


def _exchange(site, raw: bytes) -> bytes:
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(raw)
    return transport.value()


def test_the_access_log_never_holds_a_token(tmp_path):
    log = tmp_path / "access.log"
    top, reactor = _service(tmp_path, "--listen", "tcp:0:interface=127.0.0.1",
                            "--access-log", str(log), "--dashboard-token", DASHBOARD_TOKEN)
    try:
        [(_port, site, _backlog, _interface)] = reactor.tcpServers
        site.doStart()  # opens the log, as a real listening port does
        answer = _exchange(site, b"GET /dashboard?token=" + DASHBOARD_TOKEN.encode()
                           + b"&flow=post_sale&api_key=k3y&x=" + DASHBOARD_TOKEN.encode()
                           + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nReferer: http://x/?access_token=s3cret"
                           + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401")
        site.doStop()
        line = log.read_text()
        assert "GET /dashboard?token=REDACTED&flow=post_sale&api_key=REDACTED&x=REDACTED" in line
        assert DASHBOARD_TOKEN not in line and "k3y" not in line and "s3cret" not in line
        assert "access_token=REDACTED" in line
    finally:
        top.stopService()


def test_scrubbing_keeps_what_is_not_a_secret():
    assert tap.scrub_uri(b"/voice/post_sale?turn=3&hold=1") == b"/voice/post_sale?turn=3&hold=1"
    assert tap.scrub_uri(b"/x?Signature=abc;k=1", ()) == b"/x?Signature=REDACTED;k=1"


@pytest.mark.parametrize("raw, status, reason", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", b"400 Bad Request",
     b"malformed HTTP request\n"),
    (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", b"400 Bad Request", b"malformed HTTP request\n"),
    (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", b"431 Request Header Fields Too Large",
     b"request line or header longer than 16384 bytes\n"),
])
def test_broken_http_is_refused_with_a_one_line_reason(tmp_path, raw, status, reason):
    top, reactor = _service(tmp_path, "--listen", "tcp:0:interface=127.0.0.1")
    try:
        [(_port, site, _backlog, _interface)] = reactor.tcpServers
        answer = _exchange(site, raw)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 " + status + b"\r\n")
        assert b"content-type: text/plain; charset=utf-8" in head and body == reason
    finally:
        top.stopService()


def test_the_servers_group_commit_writes_the_log_lines_of_its_answers_before_they_are_sent(
        tmp_path):
    top, _reactor = _service(tmp_path, "--listen", "tcp:0:interface=127.0.0.1")
    try:
        [flushing] = [child for child in top if isinstance(child, tap.FlushOnStop)]
        assert flushing.group_commit.after_delivery is tap.flush_log_lines
    finally:
        top.stopService()
