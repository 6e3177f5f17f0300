"""What went wrong with an outgoing HTTP request (treq), in words.

The shop back-ends, the SMS sender and the helpdesk notifier all call out
over HTTP from the reactor and must turn a failed request into a cause a
log line or a node event can carry.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet import error as net
from twisted.web import _newclient

TIMEOUTS = (net.TimeoutError, net.TCPTimedOutError)
CONNECTION_ERRORS = (net.ConnectError, net.DNSLookupError, net.ConnectionLost,
                     _newclient.ResponseNeverReceived, _newclient.RequestTransmissionFailed)


def cancelled(failure: Exception) -> bool:
    """Whether ``failure`` is a request we cancelled: treq reports it as a
    lost response whose reason is the cancellation."""
    if isinstance(failure, defer.CancelledError):
        return True
    reasons = getattr(failure, "reasons", None) or []
    return any(reason.check(defer.CancelledError) for reason in reasons)


def connection_cause(failure: Exception, peer: str = "the server") -> str:
    """Why a request to ``peer`` got no answer: refused, no such host,
    the connection lost, or another connection error by name."""
    if isinstance(failure, net.ConnectionRefusedError):
        return "connection refused"
    if isinstance(failure, net.DNSLookupError):
        return "DNS lookup failed"
    if isinstance(failure, (_newclient.ResponseNeverReceived, net.ConnectionLost)):
        return f"connection lost before {peer} answered"
    return f"cannot connect ({type(failure).__name__})"
