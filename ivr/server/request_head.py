"""A request's head (its request line and headers) read in one pass.

Twisted's ``HTTPChannel`` reads a request a line at a time: its
``LineReceiver`` splits the buffer once per line and calls ``lineReceived``
for each, which checks and stores the header before it.  When the whole
head is already in the buffer, as it nearly always is, :func:`read_head`
reads it at once with the same checks; a head it is not sure Twisted would
take just as it is (incomplete, too long, malformed, chunked, with two
lengths, folded lines) gets ``None``, and the channel reads it Twisted's
way, line by line, for the same answer.
"""

from __future__ import annotations

from typing import NamedTuple

from twisted.web.http_headers import InvalidHeaderName, _nameEncoder

#: The characters of a token (a method, a header's name), as RFC 9110 and
#: Twisted's ``_istoken`` define them.
_TOKEN_CHARS = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                b"!#$%&'*+-.^_`|~")
#: The bytes Twisted takes in a request target (``_parseRequestLine``).
_TARGET_CHARS = bytes(range(33, 177))
_VERSIONS = frozenset((b"HTTP/1.1", b"HTTP/1.0"))

#: Header names as received, by their canonical form (Twisted's
#: ``_nameEncoder``): a client sends the same few names again and again.
#: Bounded as Twisted bounds its own: past it, names are worked out each time.
_canonical_names: dict[bytes, bytes] = {}
_MAX_NAMES = 10_000


class Head(NamedTuple):
    """A request's head as Twisted would have read it."""

    method: bytes
    target: bytes
    version: bytes
    #: The headers by canonical name, their values in order, as Twisted's
    #: ``Headers._rawHeaders`` holds them.
    headers: dict[bytes, list[bytes]]
    count: int
    #: The body's length from Content-Length, 0 when there is none.
    length: int
    #: What follows the blank line ending the head.
    rest: bytes


def read_head(line: bytes, buffer: bytes, max_size: int, max_headers: int) -> Head | None:
    """The head whose request line is ``line``, its headers at the start of
    ``buffer`` (what follows that line), or None when Twisted's reading
    line by line is needed: the head is not all in ``buffer``, or its
    request line and headers with the line breaks between them reach past
    ``max_size`` bytes or ``max_headers`` headers, or any part of it is
    something Twisted would refuse or treat apart (a bad request line, a
    header without a colon or with a name that is not a token, a NUL, CR or
    LF in a value, a folded line, two Content-Length headers or one not in
    digits, any Transfer-Encoding)."""
    request_line = _request_line(line)
    if request_line is None or len(line) > max_size:
        return None
    if buffer.startswith(b"\r\n"):
        return Head(*request_line, {}, 0, 0, buffer[2:])
    end = buffer.find(b"\r\n\r\n")
    if end < 0 or len(line) + end > max_size:
        return None
    block = buffer[:end]
    lines = block.split(b"\r\n")
    breaks = len(lines) - 1
    if (len(lines) > max_headers or b"\0" in block
            or block.count(b"\r") != breaks or block.count(b"\n") != breaks):
        return None
    headers = _headers(lines)
    if headers is None:
        return None
    fields, length = headers
    return Head(*request_line, fields, len(lines), length, buffer[end + 4:])


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Twisted's ``_parseRequestLine``, None where it raises."""
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if (version not in _VERSIONS or not method or method.translate(None, _TOKEN_CHARS)
            or not target or target.translate(None, _TARGET_CHARS)):
        return None
    return method, target, version


def _headers(lines: list[bytes]) -> tuple[dict[bytes, list[bytes]], int] | None:
    """The header lines (no line breaks in them) by canonical name, and the
    Content-Length, or None where Twisted's ``headerReceived`` would refuse
    them or choose a transfer decoder other than one Content-Length."""
    fields: dict[bytes, list[bytes]] = {}
    known = _canonical_names.get
    for item in lines:
        name, colon, value = item.partition(b":")
        canonical = colon and (known(name) or _canonical_name(name))
        if not canonical:
            return None
        if canonical in fields:
            fields[canonical].append(value.strip(b" \t"))
        else:
            fields[canonical] = [value.strip(b" \t")]
    if b"Transfer-Encoding" in fields:
        return None
    lengths = fields.get(b"Content-Length")
    if lengths is None:
        return fields, 0
    if len(lengths) != 1 or not lengths[0].isdigit():
        return None
    return fields, int(lengths[0])


def _canonical_name(name: bytes) -> bytes | None:
    """A header name in Twisted's canonical form, None when it is not a
    token (a space before the colon, a folded line's leading space)."""
    try:
        canonical = _nameEncoder.encode(name)
    except InvalidHeaderName:
        return None
    if len(_canonical_names) < _MAX_NAMES:
        _canonical_names[name] = canonical
    return canonical
