"""The server's HTTP channel (``ivr.server.requests.WebhookChannel``): the
answers it writes and what it asks of the socket."""

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from ivr.server import tap

ROOT = Path(__file__).parent.parent
CA1 = "CA" + "0" * 31 + "1"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def served(tmp_path):
    """The site ivr-serve builds, on a MemoryReactorClock, and that reactor."""
    reactor = MemoryReactorClock()
    options = tap.Options()
    options.parseOptions(["--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                          "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1"])
    top = tap.makeService(options, reactor)
    top.startService()
    [(_port, site, _backlog, _interface)] = reactor.tcpServers
    yield site, reactor
    top.stopService()


class CountingTransport(StringTransport):
    """A transport that counts the writes it gets and the times its local
    address is asked for."""

    def __init__(self):
        super().__init__()
        self.host_asked = self.writes = 0

    def getHost(self):
        self.host_asked += 1
        return super().getHost()

    def write(self, data):
        self.writes += 1
        super().write(data)

    def writeSequence(self, iovec):
        self.writes += 1
        super().writeSequence(iovec)


def connect(site, transport):
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    channel.makeConnection(transport)
    return channel


def answers(raw: bytes) -> list[bytes]:
    """The status lines of the answers in ``raw``."""
    return re.findall(rb"HTTP/1\.1 [0-9]{3} [^\r]*", raw)


def form_post(path: str, fields: dict) -> bytes:
    body = urlencode(fields).encode()
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))


def test_a_connection_asks_the_socket_its_address_once(served):
    site, _reactor = served
    transport = CountingTransport()
    channel = connect(site, transport)
    channel.dataReceived(HEALTHZ)
    channel.dataReceived(HEALTHZ)
    assert answers(transport.value()) == [b"HTTP/1.1 200 OK"] * 2
    assert transport.host_asked == 1
