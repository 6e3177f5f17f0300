"""The server's HTTP channel (``ivr.server.requests.WebhookChannel``): the
answers it writes, what it asks of the socket, and answers sent the moment
they are written (``ivr.server.sending``)."""

import re
import select
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from twisted.internet import task, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python import failure
from twisted.web import http, server
from twisted.web.resource import EncodingResourceWrapper, Resource
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory, Site
from twisted.web.test.requesthelper import DummyRequest

from ivr.server import http_date, requests, tap, web
from ivr.server.requests import WebhookChannel
from ivr.server.sending import send_now

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
    and remote addresses are asked for."""

    def __init__(self):
        super().__init__()
        self.host_asked = self.peer_asked = self.writes = 0

    def getHost(self):
        self.host_asked += 1
        return super().getHost()

    def getPeer(self):
        self.peer_asked += 1
        return super().getPeer()

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


def test_a_connection_asks_the_socket_its_addresses_once(served):
    site, _reactor = served
    transport = CountingTransport()
    channel = connect(site, transport)
    channel.dataReceived(HEALTHZ)
    channel.dataReceived(HEALTHZ)
    assert answers(transport.value()) == [b"HTTP/1.1 200 OK"] * 2
    assert transport.host_asked == 1
    assert transport.peer_asked == 1
    assert channel.getPeer() == transport.getPeer()


def test_an_answer_is_written_in_one_piece_with_its_headers(served):
    site, reactor = served
    transport = CountingTransport()
    channel = connect(site, transport)
    channel.dataReceived(form_post("/voice/post_sale", {"CallSid": CA1, "From": "+33612345678"}))
    reactor.advance(0)  # the group commit
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body.endswith(b"</Response>")
    assert transport.writes == 1


@pytest.mark.parametrize("request_bytes, status", [
    (b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 200 OK"),
    (b"HEAD /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed"),
])
def test_an_answer_without_a_body_still_sends_its_headers(served, request_bytes, status):
    site, _reactor = served
    transport = StringTransport()
    channel = connect(site, transport)
    channel.dataReceived(request_bytes)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == status and body == b""
    channel.dataReceived(HEALTHZ)  # the connection is kept
    assert answers(transport.value()) == [status, b"HTTP/1.1 200 OK"]


def test_a_status_callback_gets_its_204_headers_once_committed(served):
    site, reactor = served
    transport = StringTransport()
    channel = connect(site, transport)
    channel.dataReceived(form_post("/status", {"CallSid": CA1, "CallStatus": "completed"}))
    assert transport.value() == b""
    reactor.advance(0)
    assert answers(transport.value()) == [b"HTTP/1.1 204 No Content"]
    assert transport.value().endswith(b"\r\n\r\n")


def test_pipelined_requests_are_answered_in_order(served):
    site, reactor = served
    transport = StringTransport()
    channel = connect(site, transport)
    channel.dataReceived(form_post("/voice/post_sale", {"CallSid": CA1}) + HEALTHZ
                         + b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reactor.advance(0)
    assert answers(transport.value()) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK",
                                          b"HTTP/1.1 404 Not Found"]
    assert transport.value().count(b"</Response>") == 1


def test_a_closing_request_gets_its_answer_then_the_connection_closes(served):
    site, _reactor = served
    transport = StringTransport()
    channel = connect(site, transport)
    channel.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answers(transport.value()) == [b"HTTP/1.1 200 OK"]
    assert transport.value().endswith(b"}") and transport.disconnecting


# -- send_now, on real loopback sockets -------------------------------------------------

@pytest.fixture
def connected():
    """A TCP transport over a loopback connection, on a MemoryReactorClock
    (which only records what it is asked to watch), and the client's socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, address = listener.accept()
    listener.close()
    reactor = MemoryReactorClock()
    transport = tcp.Server(accepted, StringTransport(), address, None, 1, reactor)
    transport.connected, transport.repstr = True, "<loopback>"
    yield transport, reactor, client
    client.close()
    accepted.close()


def received(client, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        assert chunk, "the connection closed"
        data += chunk
    return data


def test_an_answer_is_sent_at_once_without_watching_the_socket(connected):
    transport, reactor, client = connected
    send_now(transport, b"HTTP/1.1 200 OK\r\n\r\nanswer")
    assert reactor.getWriters() == []
    assert received(client, 25) == b"HTTP/1.1 200 OK\r\n\r\nanswer"


def test_bytes_already_waiting_in_twisteds_buffer_are_not_overtaken(connected):
    transport, reactor, client = connected
    transport.write(b"first ")  # buffered: sent when the reactor finds the socket writable
    send_now(transport, b"second")
    assert reactor.getWriters() == [transport]
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(100)
    client.setblocking(True)
    transport.doWrite()
    assert received(client, 12) == b"first second"
    assert reactor.getWriters() == []


def test_what_the_socket_does_not_take_is_left_to_twisted(connected):
    transport, reactor, client = connected
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 8192  # 2 MB: more than the socket takes at once
    send_now(transport, payload)
    assert reactor.getWriters() == [transport]  # the rest waits in Twisted's buffer
    got = b""
    while len(got) < len(payload):  # the reactor's part: write once the socket is writable
        if reactor.getWriters():
            select.select([], [transport.socket], [], 5)
            transport.doWrite()
        got += client.recv(1 << 16)
    assert got == payload and reactor.getWriters() == []


def test_other_transports_get_a_plain_write():
    transport = StringTransport()
    send_now(transport, b"answer")
    assert transport.value() == b"answer"


# -- the same answers as Twisted's own channel and request --------------------------------

FIXED_DATE = b"Tue, 24 Nov 2026 10:00:00 GMT"


def fix_the_date(monkeypatch):
    """The Date of Twisted's answers and of the server's, fixed."""
    monkeypatch.setattr(http, "datetimeToString", lambda *a: FIXED_DATE)
    monkeypatch.setattr(server, "datetimeToString", http.datetimeToString)
    monkeypatch.setattr(requests, "date_header", lambda: FIXED_DATE)


SAME_AS_TWISTED = [
    HEALTHZ,
    b"GET /healthz?x=1&y=&z;w=2 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nAccept: text/plain\r\n\r\n",
    b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /voice/post_sale HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /no/such/page HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /voice%2Fpost_sale HTTP/1.1\r\nHost: a\r\n\r\n",
    b"DELETE /status HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
    form_post("/voice/post%5Fsale?turn=x", {"CallSid": CA1}),
    form_post("/voice/post_sale?turn=1;hold=1", {"CallSid": CA1}),
    form_post("/voice/post_sale?turn=1&bad", {"CallSid": CA1}),
    form_post("/voice/post_sale", {"From": "+33612345678"}),
    form_post("/voice/nope/post_sale", {"CallSid": CA1}),
    form_post("/status", {"CallSid": CA1, "CallStatus": "exploded"}),
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n6\r\nCallSi\r\n6\r\nd=CA1&\r\n0\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Expect: 100-continue\r\n\r\nabc",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Bad: a\x00b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
    HEALTHZ + b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n" + HEALTHZ,
]


def twisted_channel(site):
    """Twisted's own channel and request over the same resources."""
    class TwistedChannel(http.HTTPChannel):
        # Only malformed HTTP differs on purpose: refused with a one-line reason.
        _respondToBadRequestAndDisconnect = WebhookChannel._respondToBadRequestAndDisconnect
        lineLengthExceeded = WebhookChannel.lineLengthExceeded
        _refuse, _refused = WebhookChannel._refuse, False
        _flush_head, _head = WebhookChannel._flush_head, b""

    reference = Site(site.resource, parsePOSTFormSubmission=False)
    reference.protocol = TwistedChannel
    return reference.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))


@pytest.mark.parametrize("raw", SAME_AS_TWISTED)
def test_answers_are_byte_for_byte_twisteds(served, monkeypatch, raw):
    site, reactor = served
    fix_the_date(monkeypatch)
    got = []
    for channel in (connect(site, StringTransport()), twisted_channel(site)):
        if not channel.transport:
            channel.makeConnection(StringTransport())
        channel.dataReceived(raw)
        reactor.advance(0)
        got.append((channel.transport.value(), bool(channel.transport.disconnecting)))
    assert got[0] == got[1]


# -- the head read in one pass (ivr.server.request_head): the same as line by line ---------

def twilio_post(path: str = "/voice/post_sale?turn=1", fields: dict | None = None,
                extra: bytes = b"") -> bytes:
    """A webhook as Twilio sends it: a dozen headers."""
    body = urlencode(fields or {"CallSid": CA1, "From": "+33612345678", "Digits": "1"}).encode()
    return (b"POST %s HTTP/1.1\r\nHost: ivr.example.com\r\nUser-Agent: TwilioProxy/1.1\r\n"
            b"Content-Length: %d\r\nAccept: */*\r\nCache-Control: max-age=259200\r\n"
            b"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
            b"I-Twilio-Idempotency-Token: 0f9a8b7c-1234-4d5e-8f90-abcdefabcdef\r\n"
            b"X-Home-Region: us1\r\nX-Twilio-Signature: 0123456789abcdefABCDEF+/xyz=\r\n"
            b"Accept-Encoding: gzip\r\n%s\r\n%s" % (path.encode(), len(body), extra, body))


def many_headers(count: int) -> bytes:
    return (b"GET /healthz HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(count - 1)) + b"\r\n")


def long_header(size: int) -> bytes:
    """A request whose request line and headers add up to ``size`` bytes
    (Twisted's limit: 16,384, line breaks not counted)."""
    start = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Long: "
    return start + b"x" * (size - len(start) + 4) + b"\r\n\r\n"


SAME_HEAD_AS_TWISTED = [
    twilio_post(),
    twilio_post("/status", {"CallSid": CA1, "CallStatus": "completed"}),
    twilio_post() + twilio_post("/voice/post_sale?turn=2") + HEALTHZ,
    twilio_post(extra=b"Connection: close\r\n") + HEALTHZ,
    twilio_post(extra=b"Cookie: a=1; b=2\r\nCookie: c\r\n"),
    twilio_post(extra=b"Content-Length: 0\r\n"),
    twilio_post(extra=b"Transfer-Encoding: identity\r\n"),
    twilio_post(extra=b"Transfer-Encoding: gzip\r\n"),
    twilio_post(extra=b"Expect: 100-Continue\r\n"),
    twilio_post(extra=b"Connection: Keep-Alive\r\n") + HEALTHZ,
    twilio_post(extra=b"Connection: keep-alive close\r\n") + HEALTHZ,
    twilio_post(extra=b"x-twilio-signature: twice\r\nHOST: again\r\n"),
    b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + HEALTHZ,
    b"POST /status HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc" + HEALTHZ,
    b"POST /status HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"\r\n" + HEALTHZ,
    b"\r\n\r\n" + HEALTHZ,
    HEALTHZ + b"\r\n" + HEALTHZ,
    b"GET /healthz HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nhost:a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: \t a \t \r\nX-Empty:\r\nX-Blank: \t\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: caf\xc3\xa9\r\nX-Bytes: \x01\x7f\xff\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Colons: a:b::c\r\n\r\n",
    b"GET /healthz?a=%41&b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /healthz\x7f\xb0 HTTP/1.1\r\nHost: a\r\n\r\n",
    # Malformed: refused with a 400 (or 431) and the connection closed.
    b"GET /healthz\xb1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /healthz HTTP/1.2\r\nHost: a\r\n\r\n",
    b"GET /healthz http/1.1\r\nHost: a\r\n\r\n",
    b"GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /healthz HTTP/1.1 \r\nHost: a\r\n\r\n",
    b"GET /healthz\r\nHost: a\r\n\r\n",
    b"G(T /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b" /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /heal\tthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n: a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nX(y): a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n Host: a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\n\tX-Folded: b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Bad: a\rb\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Bad: a\nb\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\nX-Bad: b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHo\x00st: a\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\n\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3 3\r\n\r\nabc",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: \xd9\xa3\r\n\r\nabc",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length:  0003 \r\n\r\nabc" + HEALTHZ,
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n" + HEALTHZ,
    b"POST /status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
    form_post("/status", {"CallSid": CA1}) + b"NOT HTTP\r\n\r\n",
    HEALTHZ + b"GET /healthz HTTP/1.1\r\nHost a\r\n\r\n" + HEALTHZ,
    many_headers(500),
    many_headers(501),
    long_header(16384),
    long_header(16385),
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Long: " + b"x" * 16400 + b"\r\n\r\n",
    b"GET /" + b"x" * 16400 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
]


def short(raw: bytes) -> str:
    """A test's name for a request: its first line, its length."""
    return f"{raw[:40]!r}...({len(raw)} bytes)"


def boundaries(raw: bytes) -> list[int]:
    """Where to split ``raw`` in two: everywhere in a short request; in a
    long one, a hundred places and every byte around the line breaks near
    its start and around the end of each head."""
    if len(raw) <= 1500:
        return list(range(1, len(raw)))
    cuts = set(range(1, len(raw), len(raw) // 100))
    marks = [m.start() for m in re.finditer(b"\r\n", raw[:200])]
    marks += [m.start() for m in re.finditer(b"\r\n\r\n", raw)]
    cuts.update(at + d for at in marks for d in range(-3, 6))
    return sorted(cut for cut in cuts if 0 < cut < len(raw))


def pieces_of(raw: bytes) -> list[list[bytes]]:
    """``raw`` whole, in two pieces split at each of its :func:`boundaries`,
    and (when short) byte by byte."""
    ways = [[raw]] + [[raw[:cut], raw[cut:]] for cut in boundaries(raw)]
    if len(raw) <= 1500:
        ways.append([raw[i:i + 1] for i in range(len(raw))])
    return ways


class Echo(Resource):
    """A leaf answering with what the channel read of the request."""

    isLeaf = True

    def render(self, request):
        return repr((request.method, request.uri, request.clientproto, request.args,
                     sorted(request.requestHeaders.getAllRawHeaders()),
                     request.content.read(), request.channel.persistent)).encode()


def echo_channels():
    """The server's channel and Twisted's, over sites that echo the
    request, both with the server's request."""
    ours = tap.WebhookSite(Echo(), requestFactory=requests.LimitedRequest,
                           logPath=None, parsePOSTFormSubmission=False)
    reference = twisted_channel(Site(Echo(), parsePOSTFormSubmission=False))
    reference.requestFactory = requests.LimitedRequest
    channels = [connect(ours, StringTransport()), reference]
    channels[1].makeConnection(StringTransport())
    return channels


def fed(channel, pieces, reactor=None):
    """What ``channel`` answers to ``pieces``, received one by one until it
    closes the connection (a TCP transport stops reading then)."""
    for piece in pieces:
        if channel.transport.disconnecting:
            break
        channel.dataReceived(piece)
    if reactor is not None:
        reactor.advance(0)
    return channel.transport.value(), bool(channel.transport.disconnecting)


@pytest.fixture
def fixed_date(monkeypatch):
    fix_the_date(monkeypatch)


@pytest.mark.parametrize("raw", SAME_AS_TWISTED + SAME_HEAD_AS_TWISTED, ids=short)
def test_requests_are_read_as_twisted_reads_them_however_they_arrive(fixed_date, raw):
    for pieces in pieces_of(raw):
        ours, twisteds = echo_channels()
        assert fed(ours, pieces) == fed(twisteds, pieces), pieces


@pytest.mark.parametrize("raw", [b"GET /healthz?" + b"x" * 30 + b" HTTP/1.1\r\n\r\n",
                                 b"GET /healthz HTTP/1.1\r\nHost: " + b"x" * 20 + b"\r\n\r\n",
                                 b"GET /healthz HTTP/1.1\r\nHost: " + b"x" * 12 + b"\r\n\r\n"],
                         ids=short)
def test_a_lower_limit_on_the_heads_size_is_kept(fixed_date, raw):
    channels = echo_channels()
    for channel in channels:
        channel.totalHeadersSize = 40
    ours, twisteds = channels
    assert fed(ours, [raw]) == fed(twisteds, [raw])


def for_a_new_call(pieces: list[bytes], number: int) -> list[bytes]:
    """``pieces`` cut at the same places, for call ``number`` rather than
    ``CA1`` (a call's next turn played twice would get another answer)."""
    raw = b"".join(pieces).replace(CA1.encode(), b"CA%032x" % number)
    ends = [sum(map(len, pieces[:i + 1])) for i in range(len(pieces))]
    return [raw[start:end] for start, end in zip([0] + ends, ends)]


@pytest.mark.parametrize("raw", SAME_HEAD_AS_TWISTED, ids=short)
def test_answers_are_twisteds_however_the_request_arrives(served, fixed_date, raw):
    site, reactor = served
    for number, pieces in enumerate(pieces_of(raw)[::7]):
        ours, twisteds = connect(site, StringTransport()), twisted_channel(site)
        twisteds.makeConnection(StringTransport())
        assert (fed(ours, for_a_new_call(pieces, 2 * number + 2), reactor)
                == fed(twisteds, for_a_new_call(pieces, 2 * number + 3), reactor)), pieces


def test_a_body_arriving_later_and_the_next_request_are_read_in_order(fixed_date):
    ours, twisteds = echo_channels()
    raw = twilio_post() + HEALTHZ
    cut = raw.index(b"\r\n\r\n") + 10
    for channel in (ours, twisteds):
        channel.dataReceived(raw[:cut])
        assert b"HTTP/1.1" not in channel.transport.value()
    assert fed(ours, [raw[cut:]]) == fed(twisteds, [raw[cut:]])
    assert answers(ours.transport.value()) == [b"HTTP/1.1 200 OK"] * 2


@pytest.mark.parametrize("raw", [HEALTHZ, twilio_post(), form_post("/status", {"CallSid": CA1}),
                                 b"GET /healthz HTTP/1.0\r\n\r\n", many_headers(500),
                                 twilio_post(extra=b"Connection: close\r\nCookie: a=b\r\n")],
                         ids=short)
def test_an_ordinary_head_is_read_in_one_pass(monkeypatch, raw):
    read = []
    monkeypatch.setattr(WebhookChannel, "headerReceived", lambda self, line: read.append(line))
    ours, _twisteds = echo_channels()
    ours.dataReceived(raw)
    assert read == [] and ours.transport.value().startswith((b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK"))


# -- the idle time-out: one timer per connection --------------------------------------------

class Slow(Resource):
    """A leaf answered only when the test says so."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.waiting = []

    def render_GET(self, request):
        self.waiting.append(request)
        return NOT_DONE_YET


def timed(site, clock):
    """A connection whose idle time-out runs on ``clock``."""
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    channel.callLater = clock.callLater
    channel.makeConnection(StringTransport())
    return channel


def test_an_idle_connection_is_closed_after_the_time_out(served):
    site, _reactor = served
    clock = task.Clock()
    channel = timed(site, clock)
    channel.dataReceived(HEALTHZ)
    clock.advance(site.timeOut - 1)
    assert not channel.transport.disconnecting
    channel.dataReceived(HEALTHZ)  # the wait starts again
    clock.advance(site.timeOut - 1)
    assert not channel.transport.disconnecting
    clock.advance(1)
    assert channel.transport.disconnecting
    channel.connectionLost(None)
    assert clock.getDelayedCalls() == []


def test_a_request_answered_after_the_time_out_keeps_its_connection(served):
    site, _reactor = served
    clock, slow = task.Clock(), Slow()
    site.resource.putChild(b"slow", slow)
    channel = timed(site, clock)
    channel.dataReceived(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    clock.advance(site.timeOut * 2.5)  # answering: never idle
    assert not channel.transport.disconnecting
    [request] = slow.waiting
    request.write(b"done")
    request.finish()
    assert channel.transport.value().endswith(b"4\r\ndone\r\n0\r\n\r\n")
    clock.advance(site.timeOut - 1)  # idle from the answer on
    assert not channel.transport.disconnecting
    clock.advance(1)
    assert channel.transport.disconnecting
    channel.connectionLost(None)
    assert clock.getDelayedCalls() == []


def test_a_connection_keeps_one_timer_from_request_to_request(served):
    site, _reactor = served
    clock = task.Clock()
    channel = timed(site, clock)
    [timer] = clock.getDelayedCalls()
    for _ in range(3):
        channel.dataReceived(HEALTHZ)
        assert clock.getDelayedCalls() == [timer]
    channel.connectionLost(None)
    assert clock.getDelayedCalls() == []


# -- answers written and finished in one step (LimitedRequest.write, finish) -------------

class Answers(Resource):
    """A leaf answering ``/<way>/<now|later>`` the way named: at once, or
    once the test calls :meth:`answer_pending` (as a turn answers after
    its commit)."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.pending = []

    def render(self, request):
        way, when = (request.postpath + [b"", b""])[:2]
        answer = getattr(self, "_" + way.decode().replace("-", "_"))
        if when == b"now":
            return answer(request)
        request.notifyFinish().addErrback(lambda _: None)
        self.pending.append((answer, request))
        return NOT_DONE_YET

    def answer_pending(self):
        while self.pending:
            answer, request = self.pending.pop(0)
            body = answer(request)
            if body is not NOT_DONE_YET:
                requests.finish_with(request, body)

    def _typed(self, request):
        request.setHeader(b"content-type", b"application/xml")
        return b"<Response/>"

    def _untyped(self, request):  # Twisted's default type, text/html
        return b"<p>hello</p>"

    def _empty(self, request):
        return b""

    def _no_content(self, request):
        request.setResponseCode(204)
        request.finish()
        return NOT_DONE_YET

    def _no_content_written(self, request):  # what is written after the head is dropped
        request.setResponseCode(204)
        request.write(b"dropped")
        request.finish()
        return NOT_DONE_YET

    def _not_modified(self, request):
        request.setResponseCode(304)
        request.setHeader(b"content-length", b"12")
        request.finish()
        return NOT_DONE_YET

    def _chunked(self, request):  # no length: Twisted's chunks
        return written_in_pieces(request, [b"one", b"two"])

    def _pieces(self, request):
        request.setHeader(b"content-length", b"6")
        return written_in_pieces(request, [b"one", b"two"])

    def _length_zero_typed(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b""

    def _refused(self, request):
        return requests.plain_text(request, 429, "too many")

    def _reason(self, request):
        request.setResponseCode(200, b"Fine Thanks")
        return b"ok"

    def _cookie(self, request):
        request.addCookie(b"a", b"1", path=b"/")
        return b"cookie"

    def _etag(self, request):
        request.setETag(b"abc")
        return b"tagged"

    def _modified(self, request):
        request.setLastModified(1_764_000_000)
        return b"dated"

    def _two_values(self, request):
        request.responseHeaders.addRawHeader(b"x-twice", b"1")
        request.responseHeaders.addRawHeader(b"x-twice", b"2")
        return b"twice"

    def _streamed(self, request):
        request.registerProducer(Streaming(), True)
        request.write(b"a")
        request.write(b"bb")
        request.unregisterProducer()
        return written_in_pieces(request, [b"ccc"])


def written_in_pieces(request, pieces: list[bytes]) -> object:
    """``request`` answered with ``pieces``, one write each."""
    for piece in pieces:
        request.write(piece)
    request.finish()
    return NOT_DONE_YET


class Streaming:
    """A push producer (its answer written by the resource)."""

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


ANSWER_WAYS = ["typed", "untyped", "empty", "no-content", "no-content-written", "not-modified",
               "chunked", "pieces", "length-zero-typed", "refused",
               "reason", "cookie", "etag", "modified", "two-values", "streamed"]


def answer_requests(way: str, when: str) -> list[bytes]:
    path = f"/{way}/{when}".encode()
    return [b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path,
            b"HEAD %s HTTP/1.1\r\nHost: a\r\n\r\n" % path,
            b"GET %s HTTP/1.0\r\n\r\n" % path,
            b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path,
            b"GET %s HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n" % path,
            b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path + HEALTHZ.replace(b"healthz", b"typed/now")]


def answering_channels(resource):
    """The server's channel and request, and Twisted's own, over ``resource``
    (whose answers are gzipped when asked, through Twisted's encoder)."""
    wrapped = EncodingResourceWrapper(resource, [GzipEncoderFactory()])
    ours = tap.WebhookSite(wrapped, requestFactory=requests.LimitedRequest, logPath=None,
                           parsePOSTFormSubmission=False)
    twisteds = twisted_channel(Site(wrapped, parsePOSTFormSubmission=False))
    channels = [connect(ours, StringTransport()), twisteds]
    twisteds.makeConnection(StringTransport())
    return channels


@pytest.mark.parametrize("way", ANSWER_WAYS)
@pytest.mark.parametrize("when", ["now", "later"])
def test_answers_are_written_as_twisteds_request_writes_them(fixed_date, way, when):
    for raw in answer_requests(way, when):
        got = []
        for channel in answering_channels(answers := Answers()):
            channel.dataReceived(raw)
            answers.answer_pending()
            got.append((channel.transport.value(), bool(channel.transport.disconnecting)))
        assert got[0] == got[1], raw
        assert got[0][0].startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), raw


def test_a_whole_answer_is_sent_in_one_write(fixed_date):
    site = tap.WebhookSite(Answers(), requestFactory=requests.LimitedRequest, logPath=None)
    transport = CountingTransport()
    connect(site, transport).dataReceived(b"GET /typed/now HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.value() == (b"HTTP/1.1 200 OK\r\nServer: " + server.version + b"\r\nDate: "
                                 + FIXED_DATE + b"\r\nContent-Type: application/xml\r\n"
                                 b"Content-Length: 11\r\n\r\n<Response/>")
    assert transport.writes == 1


@pytest.mark.parametrize("way", ["typed", "no-content", "chunked"])
def test_writing_after_the_finish_is_refused_as_twisted_refuses_it(fixed_date, way):
    outcomes = []
    for channel in answering_channels(answers := Answers()):
        channel.dataReceived(b"GET /%s/later HTTP/1.1\r\nHost: a\r\n\r\n" % way.encode())
        [(_answer, request)] = answers.pending
        answers.answer_pending()
        try:
            request.write(b"more")
        except RuntimeError as error:
            outcomes.append(str(error))
        else:  # a 204's writes after its head are dropped
            outcomes.append(None)
        with pytest.warns(UserWarning, match="called twice"):
            request.finish()
        outcomes.append(channel.transport.value())
    assert outcomes[:2] == outcomes[2:]
    assert (outcomes[0] is None) == (way == "no-content")


def test_an_answer_to_a_lost_connection_is_refused_as_twisted_refuses_it(fixed_date):
    for channel in answering_channels(answers := Answers()):
        channel.dataReceived(b"GET /typed/later HTTP/1.1\r\nHost: a\r\n\r\n")
        _answer, request = answers.pending.pop()
        channel.connectionLost(failure.Failure(ConnectionDone()))
        request.write(b"dropped")  # Twisted's: nothing written, no error
        with pytest.raises(RuntimeError, match="connection was lost"):
            request.finish()
        assert channel.transport.value() == b""


# -- the Date header, formatted once a second ---------------------------------------------

def test_the_date_is_formatted_once_a_second_and_anew_each_second():
    now = [1_764_000_000.25]
    date = http_date.DateHeader(lambda: now[0]).now
    first = date()
    assert first == http.datetimeToString(1_764_000_000) == b"Mon, 24 Nov 2025 16:00:00 GMT"
    now[0] = 1_764_000_000.999
    assert date() is first
    now[0] = 1_764_000_001.0  # the next second
    assert date() == b"Mon, 24 Nov 2025 16:00:01 GMT"
    now[0] = 1_764_003_599.5  # a jump forward, across the hour
    assert date() == b"Mon, 24 Nov 2025 16:59:59 GMT"
    now[0] = 1_764_000_000.5  # the clock set back
    assert date() == first


def test_the_servers_date_is_the_wall_clocks():
    before = time.time()
    got = http_date.date_header()
    after = time.time()
    assert got in {http.datetimeToString(int(before)), http.datetimeToString(int(after))}


def test_each_answer_carries_the_date_of_its_second(monkeypatch):
    now = [1_764_000_000.5]
    monkeypatch.setattr(requests, "date_header", http_date.DateHeader(lambda: now[0]).now)
    site = tap.WebhookSite(Answers(), requestFactory=requests.LimitedRequest, logPath=None)
    channel = connect(site, StringTransport())
    dates = []
    for moment in (1_764_000_000.5, 1_764_000_000.9, 1_764_000_001.0, 1_764_000_061.2):
        now[0] = moment
        channel.transport.clear()
        channel.dataReceived(b"GET /typed/now HTTP/1.1\r\nHost: a\r\n\r\n")
        dates.append(re.search(rb"\r\nDate: ([^\r]*)\r\n", channel.transport.value())[1])
    assert dates == [b"Mon, 24 Nov 2025 16:00:00 GMT"] * 2 + [b"Mon, 24 Nov 2025 16:00:01 GMT",
                                                               b"Mon, 24 Nov 2025 16:01:01 GMT"]


# -- when_lost: a lost connection told without a Deferred per answer ----------------------

def waiting_request():
    """A request of the server's, read and waiting for its answer."""
    answers = Answers()
    site = tap.WebhookSite(answers, requestFactory=requests.LimitedRequest, logPath=None)
    channel = connect(site, StringTransport())
    channel.dataReceived(b"GET /typed/later HTTP/1.1\r\nHost: a\r\n\r\n")
    [(_answer, request)] = answers.pending
    return channel, request


def test_a_lost_connection_is_told_in_order_with_notify_finish():
    channel, request = waiting_request()
    told = []
    requests.when_lost(request, lambda reason: told.append(("first", reason.value)))
    request.notifyFinish().addErrback(lambda reason: told.append(("deferred", reason.value)))
    requests.when_lost(request, lambda reason: told.append(("last", reason.value)))
    lost = ConnectionDone()
    channel.connectionLost(failure.Failure(lost))
    assert told == [("first", lost), ("deferred", lost), ("last", lost)]


def test_a_finished_answer_tells_no_loss():
    channel, request = waiting_request()
    told, finished = [], []
    requests.when_lost(request, told.append)
    request.notifyFinish().addCallback(finished.append)
    requests.finish_with(request, b"done")
    channel.connectionLost(failure.Failure(ConnectionDone()))
    assert told == [] and finished == [None]


def test_an_error_once_the_connection_is_lost_is_logged_and_the_rest_still_told():
    channel, request = waiting_request()
    told = []
    requests.when_lost(request, lambda reason: 1 / 0)
    requests.when_lost(request, told.append)
    with capturedLogs() as events:
        channel.connectionLost(failure.Failure(ConnectionDone()))
    assert len(told) == 1
    [event] = [e for e in events if e.get("log_failure") is not None]
    assert event["log_failure"].check(ZeroDivisionError)


def test_another_request_is_told_through_notify_finish():
    request = DummyRequest([b""])
    told = []
    requests.when_lost(request, told.append)
    request.processingFailed(failure.Failure(ConnectionDone()))
    assert [reason.value.__class__ for reason in told] == [ConnectionDone]


def test_a_turn_is_cancelled_when_the_caller_hangs_up_before_its_answer(served, monkeypatch):
    site, reactor = served
    channel = connect(site, StringTransport())
    channel.dataReceived(form_post("/voice/post_sale", {"CallSid": CA1, "From": "+33612345678"}))
    finished = []
    monkeypatch.setattr(web, "finish_with", lambda *args: finished.append(args))
    channel.connectionLost(failure.Failure(ConnectionDone()))
    reactor.advance(0)  # the group commit: the turn is kept, its answer not written
    assert finished == [] and channel.transport.value() == b""


def test_a_status_callback_is_kept_when_the_provider_hangs_up_before_its_answer(
        served, tmp_path):
    site, reactor = served
    voice = connect(site, StringTransport())
    voice.dataReceived(form_post("/voice/post_sale", {"CallSid": CA1, "From": "+33612345678"}))
    reactor.advance(0)
    channel = connect(site, StringTransport())
    channel.dataReceived(form_post("/status", {"CallSid": CA1, "CallStatus": "completed",
                                               "SequenceNumber": "0"}))
    channel.connectionLost(failure.Failure(ConnectionDone()))
    reactor.advance(0)  # the group commit: the call ends, no answer is written
    assert channel.transport.value() == b""
    with sqlite3.connect(tmp_path / "ivr.db") as db:
        assert db.execute("SELECT provider_status FROM calls WHERE call_id = ?",
                          [CA1]).fetchone() == ("completed",)
