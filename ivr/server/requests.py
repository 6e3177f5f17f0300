"""What every web resource shares: bounded requests and one-line
plain-text refusals (bodies are parsed by :mod:`ivr.providers.bodies`)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger
from twisted.python import failure
from twisted.web import http, resource, server
from twisted.web.http import NO_BODY_CODES, _IdentityTransferDecoder, parse_qs, unquote
from twisted.web.http_headers import Headers, InvalidHeaderName, _nameEncoder
from twisted.web.iweb import INonQueuedRequestFactory
from twisted.web.server import Request

from ivr.server.http_date import date_header
from ivr.server.request_head import Head, read_head
from ivr.server.sending import send_now

#: The largest webhook body accepted.  Twilio's are a few kB.
MAX_BODY = 64 * 1024


#: A method name as HTTP defines it (a token); anything else is refused
#: before Twisted reads it as ASCII.
_METHOD_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          b"abcdefghijklmnopqrstuvwxyz")


def plain_text(request, code: int, message: str) -> bytes:
    """Set ``code`` and a plain-text type on ``request``; its body: ``message``
    on one line."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return (message + "\n").encode("utf-8")


def finish_with(request, body: bytes = b"") -> None:
    """Answer a request left open (``NOT_DONE_YET``) with ``body``.  With
    its length known, Twisted sends the headers and the body in one write;
    without, it sends a chunked body and then a closing chunk."""
    # Stored as Twisted's setHeader would store it, without canonicalising
    # a constant name or sanitising digits.
    request.responseHeaders._rawHeaders[b"Content-Length"] = [b"%d" % len(body)]
    if body:
        request.write(body)
    request.finish()


def when_lost(request, lost: Callable[[failure.Failure], object]) -> None:
    """Call ``lost`` with the reason should ``request``'s connection be lost
    before its answer is finished: ``request.notifyFinish().addErrback(lost)``,
    without a Deferred to make, chain and fire for every answer finished
    when ``request`` is a :class:`LimitedRequest`."""
    if isinstance(request, LimitedRequest):
        request.notifications.append(_LostNotice(lost))
    else:
        request.notifyFinish().addErrback(lost)


class _LostNotice:
    """An entry of Twisted's ``Request.notifications`` (which holds the
    Deferreds of ``notifyFinish``): Twisted calls ``callback(None)`` once the
    answer is finished, ``errback(reason)`` when the connection is lost
    first, and only the latter matters here."""

    __slots__ = ("lost",)
    _log = Logger()

    def __init__(self, lost: Callable[[failure.Failure], object]):
        self.lost = lost

    def callback(self, _result) -> None:
        """The answer is finished: nothing to do."""

    def errback(self, reason) -> None:
        """The connection was lost: ``lost(reason)``, an error in it logged
        (a Deferred's errback would have kept it, to be logged unhandled)."""
        try:
            self.lost(reason if isinstance(reason, failure.Failure) else failure.Failure(reason))
        except Exception:  # noqa: BLE001 - logged, and the other notices still run
            self._log.failure("error after a lost connection")


def _no_body(data) -> None:
    """What an answer without a body (HEAD, 204, 304) does with what is
    written after its headers, as Twisted's does: nothing."""


class BadRequest(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def header_text(request, name: bytes) -> str | None:
    """A request header as text, or None when absent; raises
    :class:`BadRequest` (400) when it is not UTF-8 (Twisted's str lookup
    would raise instead)."""
    value = request.getHeader(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, f"{name.decode('ascii')} header is not UTF-8") from None


class LimitedRequest(Request):
    """A request that stops storing its body past :data:`MAX_BODY`, so an
    oversized upload costs neither memory nor disk.  It does less per
    request than Twisted's, for the same answers (tested byte for byte
    against Twisted's own in ``tests/test_webhook_channel.py``): the query
    parsed into ``request.args`` only when read, :meth:`process` without
    its general-purpose steps, and an answer's head and body written in
    one piece (:meth:`write`, :meth:`finish`)."""

    too_large = False
    _args = None
    _query = b""

    @property  # type: ignore[override]
    def args(self):
        """The query's fields (Twisted's ``request.args``), parsed when first
        read: only the dashboard's pages read them."""
        if self._args is None:
            self._args = parse_qs(self._query, 1)
        return self._args

    @args.setter
    def args(self, value):
        self._args = value

    def requestReceived(self, command, path, version):
        """Twisted's, without parsing the query before anyone asks (the
        webhooks read theirs strictly, themselves)."""
        if self._parsePOSTFormSubmission:
            return super().requestReceived(command, path, version)
        self.content.seek(0, 0)
        self.method, self.uri, self.clientproto = command, path, version
        self.path, _, self._query = path.partition(b"?")
        self.process()
        return None

    def process(self):
        """Twisted's ``Request.process``: the default headers stored as they
        are written (constant names and values: nothing to canonicalise or
        sanitise), path segments unquoted only when one holds a ``%``, and
        the resource found without copying the empty ``prepath``."""
        self.site = site = self.channel.site
        raw = self.responseHeaders._rawHeaders
        raw[b"Server"] = [server.version]
        raw[b"Date"] = [date_header()]
        self.prepath = []
        path = self.path
        self.postpath = (list(map(unquote, path[1:].split(b"/"))) if b"%" in path
                         else path[1:].split(b"/"))
        if path == b"*":
            self._handleStar()
            return
        try:
            self.sitepath = []
            resrc = resource.getChildForRequest(site.resource, self)
            if resource._IEncodingResource.providedBy(resrc):
                encoder = resrc.getEncoder(self)
                if encoder is not None:
                    self._encoder = encoder
            self.render(resrc)
        except BaseException:
            self.processingFailed(failure.Failure())

    def write(self, data):
        """Twisted's ``Request.write`` (``server.Request``'s, then
        ``http.Request``'s).  An answer's first write, unless its body is to
        be chunked or anything else is asked of it (an encoder, a cookie, an
        ETag or Last-Modified), is handed to the channel with its status line
        and headers, to be sent in one piece: the same bytes, without
        Twisted's steps."""
        if (self.startedWriting or self.finished or self._disconnected
                or self._encoder is not None or self._inFakeHead or self.lastModified is not None
                or self.etag is not None or self.cookies
                or not isinstance(self.channel, WebhookChannel)):
            return super().write(data)
        raw = self.responseHeaders._rawHeaders
        code = self.code
        length = raw.get(b"Content-Length")
        bodiless = code in NO_BODY_CODES or self.method == b"HEAD"
        if length is None and not bodiless and self.clientproto == b"HTTP/1.1":
            return super().write(data)  # a chunked body
        if (code not in NO_BODY_CODES and b"Content-Type" not in raw
                and self.defaultContentType is not None and not (length and length[0] == b"0")):
            raw[b"Content-Type"] = [self.defaultContentType]
        self.startedWriting = 1
        if bodiless:  # Twisted drops what is written after the headers
            self.write = _no_body
            data = b""
        else:
            self.sentLength += len(data)
        self.channel.write_answer(self.clientproto, b"%d" % code, self.code_message, raw, data)
        return None

    def finish(self):
        """Twisted's ``Request.finish`` (``server.Request``'s, then
        ``http.Request``'s), in one step for an answer with no encoder."""
        if self._encoder is not None or self._disconnected or self.finished:
            return super().finish()  # Twisted's error or warning
        if not self.startedWriting:
            self.write(b"")
        if self.chunked:
            self.channel.write(b"0\r\n\r\n")
        factory = getattr(self.channel, "factory", None)
        if factory is not None:
            factory.log(self)
        self.finished = 1
        if not self.queued:
            self._cleanup()
        return None

    def gotLength(self, length):
        if length is not None and length > MAX_BODY:
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.too_large or self.content.tell() + len(data) > MAX_BODY:
            self.too_large = True
            return
        super().handleContentChunk(data)

    def processingFailed(self, reason):
        """A bug in a resource: logged with its traceback, answered with one
        line of plain text (never the traceback, never Twisted's HTML)."""
        self._log.failure("unhandled error answering a request", failure=reason)
        if not self.startedWriting:
            body = b"internal error; see the server log\n"
            self.setResponseCode(http.INTERNAL_SERVER_ERROR)
            self.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self.setHeader(b"content-length", b"%d" % len(body))
            self.write(body)
        if not self.finished:
            self.finish()
        return reason


def raw_refusal(code: int, status: bytes, message: str) -> bytes:
    """A whole HTTP response refusing a request the parser could not read:
    one line of plain text, and the connection closes."""
    body = (message + "\n").encode("utf-8")
    return (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (code, status, len(body), body))


_LENGTH_HEADERS = frozenset((b"Content-Length", b"Transfer-Encoding"))
#: The headers Twisted's ``allHeadersReceived`` acts on.
_SHORT_HEADERS = frozenset((b"Cookie", b"Connection", b"Expect"))


class WebhookChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel, whose refusals of broken HTTP (a bad
    request line or header, a line past 16 kB) carry a one-line reason
    like every other refusal, instead of an empty 400 or a silent close.
    An answer's status line and headers are held until its body is written,
    then both are sent at once (:func:`ivr.server.sending.send_now`).  A
    request's head all in the buffer is read in one pass
    (:func:`ivr.server.request_head.read_head`)."""

    _refused = False
    _host = None
    _peer = None
    #: The status line and headers of the answer being written, not sent yet.
    _head = b""
    #: The idle time-out's timer (see :meth:`setTimeout`).
    _idle_timer = None

    def lineReceived(self, line):
        """Twisted's, but for a request line whose headers are all in the
        buffer already: the head is then read in one pass
        (:func:`ivr.server.request_head.read_head`), unless it holds anything
        Twisted would refuse or treat apart, read Twisted's way."""
        if line and self._HTTPChannel__first_line == 1 and self.persistent:
            head = read_head(line, self._buffer, min(self.totalHeadersSize, self.MAX_LENGTH),
                             self.maxHeaders)
            if head is not None:
                self._head_received(head)
                return
        super().lineReceived(line)

    def _head_received(self, head: Head) -> None:
        """What Twisted's ``lineReceived`` does from a request line to the
        blank line after the headers, for a head read at once: the request
        made and its headers stored, then the body read (``LineReceiver``
        hands the rest of the buffer to ``rawDataReceived``) or, with none,
        the request answered."""
        factory = self.requestFactory
        if INonQueuedRequestFactory.providedBy(factory):
            request = factory(self)
        else:
            request = factory(self, len(self.requests))
        self.requests.append(request)
        request.requestHeaders._rawHeaders = head.headers
        self._command, self._path, self._version = head.method, head.target, head.version
        self._HTTPChannel__first_line = 0
        self._receivedHeaderCount = head.count
        self._buffer = rest = head.rest
        self.length = length = head.length
        self._all_headers_received(request, head)
        if length == 0:
            self.allContentReceived()
        elif len(rest) >= length and not (self.transport and self.transport.disconnecting):
            # What LineReceiver and Twisted's decoder do with a body all here.
            self._buffer = b""
            request.handleContentChunk(rest[:length])
            self._finishRequestBody(rest[length:])
        else:
            self._transferDecoder = _IdentityTransferDecoder(
                length, request.handleContentChunk, self._finishRequestBody)
            self.setRawMode()

    def _all_headers_received(self, request, head: Head) -> None:
        """Twisted's ``allHeadersReceived``, in short when the request has no
        Cookie, Connection or Expect header: nothing to parse, a connection
        kept for HTTP/1.1 only, no 100 Continue to send."""
        if _SHORT_HEADERS.isdisjoint(head.headers):
            self.persistent = head.version == b"HTTP/1.1"
            request.gotLength(head.length)
        else:
            self.allHeadersReceived()

    def headerReceived(self, line):
        """Twisted's checks of a header line, the header stored once they
        pass: Twisted's ``addRawHeader`` canonicalised the name again and
        split the value on line breaks it had just refused, and a header
        other than Content-Length or Transfer-Encoding cannot set the
        body's length."""
        try:
            header, data = line.split(b":", 1)
        except ValueError:
            self._respondToBadRequestAndDisconnect()
            return False
        try:
            header = _nameEncoder.encode(header)
        except InvalidHeaderName:
            self._respondToBadRequestAndDisconnect()
            return False
        data = data.strip(b" \t")
        if len(data.translate(None, b"\x00\r\n")) != len(data):
            self._respondToBadRequestAndDisconnect()
            return False
        if header in _LENGTH_HEADERS and not self._maybeChooseTransferDecoder(header, data):
            return False
        raw = self.requests[-1].requestHeaders._rawHeaders
        if header in raw:
            raw[header].append(data)
        else:
            raw[header] = [data]
        self._receivedHeaderCount += 1
        if self._receivedHeaderCount > self.maxHeaders:
            self._respondToBadRequestAndDisconnect()
            return False
        return True

    def writeHeaders(self, version, code, reason, headers):
        if not isinstance(headers, Headers):  # Twisted's own sanitising, for other callers
            super().writeHeaders(version, code, reason, headers)
            return
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.extend((name, b": ", value, b"\r\n"))
        lines.append(b"\r\n")
        self._flush_head()
        self._head = b"".join(lines)

    def write(self, data):
        head, self._head = self._head, b""
        send_now(self.transport, head + data)

    def write_answer(self, version: bytes, code: bytes, reason: bytes,
                     headers: dict[bytes, list[bytes]], body: bytes) -> None:
        """What :meth:`writeHeaders` then :meth:`write` send, in one piece:
        ``headers`` as Twisted stores them (``Headers._rawHeaders``)."""
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.items():
            for value in values:
                lines.extend((name, b": ", value, b"\r\n"))
        lines.append(b"\r\n")
        lines.append(body)
        if self._head:
            self.write(b"")
        send_now(self.transport, b"".join(lines))

    def writeSequence(self, iovec):
        self.write(b"".join(iovec))

    def _flush_head(self) -> None:
        """Send the headers held, when the answer has no body (HEAD, 204, an
        empty answer) or the connection is about to close."""
        if self._head:
            self.write(b"")

    def requestDone(self, request):
        """Twisted's (the next request read, or the connection closed), the
        headers held sent first; the request compared by identity (Twisted's
        ``!=`` runs ``Request.__eq__``, which does the same in Python)."""
        if self._head:
            self.write(b"")
        requests = self.requests
        if request is not requests[0]:
            raise TypeError
        del requests[0]
        if not self._waitingForTransport:
            self._networkProducer.resumeProducing()
        if self.persistent:
            self._handlingRequest = False
            if self._savedTimeOut:
                self.setTimeout(self._savedTimeOut)
            data = b"".join(self._dataBuffer)
            self._dataBuffer = []
            self.setLineMode(data)
        else:
            self.loseConnection()

    def allContentReceived(self):
        """Twisted's: the channel made ready for the next request, its idle
        time-out off while this one is answered, then the request handed
        its method, target and version (left in place: Twisted deletes
        them, and the next request line sets them again)."""
        self.length = 0
        self._receivedHeaderCount = 0
        self._receivedHeaderSize = 0
        self._HTTPChannel__first_line = 1
        self._transferDecoder = None
        if self.timeOut:
            self._savedTimeOut = self.setTimeout(None)
        self._handlingRequest = True
        self.line_mode = 0
        self.requests[-1].requestReceived(self._command, self._path, self._version)

    def loseConnection(self):
        self._flush_head()
        return super().loseConnection()

    def connectionLost(self, reason):
        self._head = b""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().connectionLost(reason)

    def setTimeout(self, period):
        """Twisted's idle time-out (``TimeoutMixin``), with one timer kept for
        the connection's life.  Twisted turns it off while a request is
        answered by cancelling its timer, and makes a new one once it is
        answered: two changes to the reactor's heap of timers per request.
        Here the timer stays, moved on with ``reset``; should it fire while a
        request is answered (the time-out off), it only waits again."""
        previous, self.timeOut = self.timeOut, period
        if period is not None:
            if self._idle_timer is None:
                self._idle_timer = self.callLater(period, self._idle_timed_out)
            else:
                self._idle_timer.reset(period)
        return previous

    def resetTimeout(self):
        if self._idle_timer is not None and self.timeOut is not None:
            self._idle_timer.reset(self.timeOut)

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        if self.timeOut is not None:
            self.timeoutConnection()
        elif self._savedTimeOut:  # a request is being answered: not idle
            self._idle_timer = self.callLater(self._savedTimeOut, self._idle_timed_out)

    def getHost(self):
        """The connection's local address, asked of the socket once: Twisted's
        Request asks for it on every request, a ``getsockname`` system call
        each time, and a connected socket's address does not change."""
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host

    def getPeer(self):
        """The connection's remote address, made once: Twisted's Request
        asks for it on every request, and a TCP transport builds a new
        address object each time for a peer that does not change."""
        if self._peer is None:
            self._peer = self.transport.getPeer()
        return self._peer

    def _respondToBadRequestAndDisconnect(self):
        self._refuse(raw_refusal(400, b"Bad Request", "malformed HTTP request"))

    def lineLengthExceeded(self, line):
        self._refuse(raw_refusal(431, b"Request Header Fields Too Large",
                                 f"request line or header longer than {self.MAX_LENGTH} bytes"))

    def _refuse(self, response: bytes) -> None:
        if not self._refused:  # the rest of a long line may come back here
            self._refused = True
            self._flush_head()
            self.transport.write(response)
        self.loseConnection()
