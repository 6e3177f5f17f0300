"""Throw hostile requests at a running server and count its answers.

    python tools/fuzz_webhooks.py http://127.0.0.1:8080 --requests 100000 [--seed 1]

Sends ``--requests`` requests, ``--concurrency`` at a time over kept-alive
connections, to an ``ivr-serve`` on loopback (any other address is
refused: this is not a tool to point at someone else's server).  The mix,
drawn from ``--seed``: bad methods, malformed CallSids, huge fields,
numbers in Unicode digits or of 20+ digits, control characters, bad or
non-UTF-8 signatures, wrong or broken content types, truncated bodies,
broken HTTP, anonymous reads of private pages, and valid-looking calls
(a turn, the next turns, a status callback) mixed in.  With
``--auth-token`` the valid-looking requests are signed as the provider
would sign them.

Prints how many answers had each status, how many were 5xx, how many got
no answer (time-out or connection closed), and the statuses of each kind
of request; exits 1 when any answer was a 5xx, or when ``--max-seconds``
ran out first.  Standard library only (asyncio), so the client stays
light next to the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import ipaddress
import random
import sys
import time
from collections import Counter, defaultdict
from urllib.parse import quote, urlencode, urlsplit

#: Seconds to wait for one answer before counting it as a time-out.
REQUEST_TIMEOUT = 15.0
FLOW = "post_sale"
CONTROL = "".join(chr(c) for c in range(0x20)) + "\x7f"
UNICODE_DIGITS = ["²", "³", "١٢", "١", "൬", "１２", "߃", "𝟗"]


class NotLoopback(ValueError):
    """The URL's host is not a loopback address."""


def loopback_target(url: str) -> tuple[str, int]:
    """(host, port) of ``url`` when it is http:// on a loopback address;
    raises :class:`NotLoopback` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NotLoopback(f"expected an http:// URL such as http://127.0.0.1:8080, not {url!r}")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise NotLoopback(f"{host} is not a loopback address: fuzz only a server on "
                              "127.0.0.1, ::1 or localhost")
    return host, parts.port or 80


def new_sid(rng: random.Random) -> str:
    return f"CA{rng.getrandbits(128):032x}"


def sign(token: str, url: str, params: dict) -> str:
    """Twilio's X-Twilio-Signature for a form POST (see ivr.providers.twilio.signature)."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


class Requests:
    """The hostile requests, one raw HTTP/1.1 request at a time, as
    ``(kind, bytes, method)``; drawn from one seeded generator so a run can
    be repeated."""

    def __init__(self, host: str, port: int, seed: int, token: str | None = None):
        self.rng = random.Random(seed)
        self.host = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.base = f"http://{self.host}"
        self.token = token
        self.calls: list[tuple[str, int]] = []  # (CallSid, next turn) of valid-looking calls
        self.kinds = [
            (self.bad_method, 8), (self.bad_sid, 10), (self.huge_field, 5),
            (self.unicode_digits, 10), (self.control_chars, 10), (self.bad_signature, 8),
            (self.bad_content_type, 8), (self.truncated_body, 6), (self.broken_http, 3),
            (self.private_read, 6), (self.pages, 6), (self.valid_turn, 20),
        ]
        self._choices = [kind for kind, _ in self.kinds]
        self._weights = [weight for _, weight in self.kinds]

    def next(self) -> tuple[str, bytes, str]:
        kind = self.rng.choices(self._choices, self._weights)[0]
        method, raw = kind()
        return kind.__name__, raw, method

    # -- building requests -------------------------------------------------------
    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                content_type: bytes | None = b"application/x-www-form-urlencoded") -> tuple[str, bytes]:
        lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), b"Host: " + self.host.encode()]
        if content_type is not None and (body or method == "POST"):
            lines.append(b"Content-Type: " + content_type)
        for name, value in (headers or {}).items():
            lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d" % len(body))
        return method, b"\r\n".join(lines) + b"\r\n\r\n" + body

    def form(self, path: str, params: dict, signed: bool = True, **extra) -> tuple[str, bytes]:
        headers = dict(extra.pop("headers", {}))
        if self.token and signed:
            headers["X-Twilio-Signature"] = sign(self.token, self.base + path, params)
        return self.request("POST", path, urlencode(params).encode(), headers, **extra)

    def some_path(self) -> str:
        return self.rng.choice([f"/voice/{FLOW}", f"/voice/{FLOW}?turn=1", "/status", "/whisper",
                                "/healthz", "/metrics", "/calls/" + new_sid(self.rng), "/dashboard",
                                "/", "/nothing", f"/voice/{FLOW}/extra"])

    # -- the kinds ---------------------------------------------------------------
    def bad_method(self):
        method = self.rng.choice(["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
                                  "PROPFIND", "GET", "FOO", "post", "M-SEARCH"])
        return self.request(method, self.some_path(), self.rng.choice([b"", b"CallSid=x"]))

    def bad_sid(self):
        sid = self.rng.choice([" ", "\x00", "", "CA1", "CA" + "0" * 31, "CA" + "0" * 33,
                               "CA" + "g" * 32, "ca" + "0" * 32, "CA" + "０" * 32, "x" * 5000,
                               "CA" + "0" * 31 + "\n", "../../etc/passwd", "' OR 1=1 --"])
        path = self.rng.choice([f"/voice/{FLOW}", "/status", "/whisper"])
        params = {"CallSid": sid, "From": "+33612345678", "CallStatus": "completed"}
        if self.rng.random() < 0.3:
            return self.request("GET", "/calls/" + quote(sid, safe=""))
        return self.form(path, params)

    def huge_field(self):
        size = self.rng.choice([200, 3000, 60_000, 70_000, 200_000])
        name = self.rng.choice(["From", "To", "SpeechResult", "CallerCity", "Digits", "X" * 100])
        params = {"CallSid": new_sid(self.rng), name: "9" * size}
        return self.form(self.rng.choice([f"/voice/{FLOW}", "/status"]), params)

    def unicode_digits(self):
        digits = self.rng.choice(UNICODE_DIGITS + ["9" * self.rng.randint(20, 40), "-1", "1e3",
                                                   " 7", "0x1f", "1_000"])
        field = self.rng.choice(["SequenceNumber", "CallDuration", "RecordingDuration",
                                 "DialCallDuration", "Digits", "turn"])
        sid = new_sid(self.rng)
        if field == "turn":
            return self.form(f"/voice/{FLOW}?turn={quote(digits)}", {"CallSid": sid})
        return self.form(self.rng.choice(["/status", f"/voice/{FLOW}"]),
                         {"CallSid": sid, "CallStatus": "completed", field: digits})

    def control_chars(self):
        text = "".join(self.rng.choice(CONTROL) for _ in range(self.rng.randint(1, 4)))
        where = self.rng.random()
        if where < 0.4:
            field = self.rng.choice(["X-IVR-Reason", "X-IVR-Order", "X-IVR-Call"])
            return self.form(f"/whisper?{field}={quote('order' + text)}", {"CallSid": new_sid(self.rng)})
        field = self.rng.choice(["SpeechResult", "From", "Digits", "CallStatus", "ApiVersion"])
        return self.form(f"/voice/{FLOW}", {"CallSid": new_sid(self.rng), field: f"a{text}b"})

    def bad_signature(self):
        signature = self.rng.choice([b"\xff\xfe\xfd", "é".encode("latin-1") * 3, b"A" * 28,
                                     b"", b"x" * 4000, base64.b64encode(self.rng.randbytes(20))])
        params = {"CallSid": new_sid(self.rng), "From": "+33612345678"}
        return self.form(self.rng.choice([f"/voice/{FLOW}", "/status", "/calls/" + params["CallSid"]]),
                         params, signed=False, headers={"X-Twilio-Signature": signature})

    def bad_content_type(self):
        content_type = self.rng.choice([b"application/json", b"text/plain", b"multipart/form-data",
                                        b"application/x-www-form-urlencoded; charset=\xff",
                                        b"\xc3\x28", b"", None])
        body = self.rng.choice([b'{"CallSid": "CA1"}', b"CallSid=" + new_sid(self.rng).encode(),
                                self.rng.randbytes(40)])
        return self.request("POST", self.rng.choice([f"/voice/{FLOW}", "/status", "/whisper"]), body,
                            content_type=content_type)

    def truncated_body(self):
        body = urlencode({"CallSid": new_sid(self.rng), "From": "+33612345678",
                          "SpeechResult": "où est ma commande"}).encode()
        cut = body[: self.rng.randint(1, len(body) - 1)]
        return self.request("POST", self.rng.choice([f"/voice/{FLOW}", "/status"]),
                            self.rng.choice([cut, cut + b"%", cut + b"%e", cut + b"&&", b"%ff"]))

    def broken_http(self):
        raw = self.rng.choice([
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
            b"\xff\xfe /voice/post_sale HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
            b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
            b"GET /healthz\r\n\r\n",
        ])
        return "BROKEN", raw

    def private_read(self):
        path = self.rng.choice(["/calls/" + (self.rng.choice(self.calls)[0] if self.calls
                                              else new_sid(self.rng)),
                                "/dashboard", "/dashboard?token=guess&since=2026-01-01"])
        auth = self.rng.choice([None, b"Bearer wrong", b"Basic \xff\xff", b"Bearer "])
        return self.request(self.rng.choice(["GET", "HEAD"]), path,
                            headers={"Authorization": auth} if auth else None)

    def pages(self):
        return self.request(self.rng.choice(["GET", "HEAD"]), self.rng.choice(["/healthz", "/metrics"]))

    def valid_turn(self):
        """A call that looks real: its first turn, a later turn, or its
        end; sometimes a retry of a turn already sent."""
        if not self.calls or self.rng.random() < 0.25:
            sid = new_sid(self.rng)
            self.calls.append((sid, 1))
            if len(self.calls) > 200:
                self.calls.pop(0)
            return self.form(f"/voice/{FLOW}", {"CallSid": sid, "From": "+33612345678",
                                                "To": "+33100000000", "CallStatus": "ringing"})
        index = self.rng.randrange(len(self.calls))
        sid, turn = self.calls[index]
        if self.rng.random() < 0.15:
            del self.calls[index]
            return self.form("/status", {"CallSid": sid, "CallStatus": "completed",
                                         "SequenceNumber": str(turn), "CallDuration": str(turn * 8)})
        retry = self.rng.random() < 0.2 and turn > 1
        turn = turn - 1 if retry else turn
        self.calls[index] = (sid, turn + 1)
        params = {"CallSid": sid, **self.rng.choice([{"Digits": "1"}, {"Digits": "2"}, {"Digits": "0"},
                                                     {"SpeechResult": "où est ma commande",
                                                      "Confidence": "0.9"}, {}])}
        return self.form(f"/voice/{FLOW}?turn={turn}", params)


# -- the client ------------------------------------------------------------------

class Tally:
    def __init__(self):
        self.statuses: Counter = Counter()
        self.by_kind: dict[str, Counter] = defaultdict(Counter)
        self.no_answer = 0
        self.examples_5xx: list[str] = []

    def add(self, kind: str, status: int | None, raw: bytes) -> None:
        label = str(status) if status is not None else "no answer"
        self.by_kind[kind][label] += 1
        if status is None:
            self.no_answer += 1
            return
        self.statuses[status] += 1
        if status >= 500 and len(self.examples_5xx) < 5:
            self.examples_5xx.append(raw[:160].decode("latin-1"))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, bool]:
    """(status, whether the connection may be reused) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get(b"connection", b"").lower() != b"close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, keep
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    else:
        await reader.read()  # the body ends with the connection
        keep = False
    return status, keep


async def worker(host, port, queue: asyncio.Queue, tally: Tally, deadline: float):
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            kind, raw, method = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        status, keep = None, False
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                        REQUEST_TIMEOUT)
            writer.write(raw)
            status, keep = await asyncio.wait_for(read_response(reader, method), REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.TimeoutError, ValueError, IndexError):
            status, keep = None, False
        tally.add(kind, status, raw)
        if not keep and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run(url: str, count: int, seed: int, concurrency: int, max_seconds: float,
              token: str | None) -> tuple[Tally, float, int]:
    host, port = loopback_target(url)
    requests = Requests(host, port, seed, token)
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(count):
        queue.put_nowait(requests.next())
    tally = Tally()
    started = time.monotonic()
    deadline = started + max_seconds
    await asyncio.gather(*(worker(host, port, queue, tally, deadline) for _ in range(concurrency)))
    return tally, time.monotonic() - started, queue.qsize()


def report(tally: Tally, url: str, count: int, seconds: float, seed: int, concurrency: int,
           unsent: int) -> str:
    sent = count - unsent
    lines = [f"{sent} requests to {url} in {seconds:.1f} s ({sent / max(seconds, 1e-9):.0f}/s), "
             f"seed {seed}, concurrency {concurrency}"]
    lines += [f"  status {status}: {n}" for status, n in sorted(tally.statuses.items())]
    lines.append(f"  no answer (time-out or connection closed): {tally.no_answer}")
    lines.append(f"5xx: {tally.server_errors}")
    lines.append("by kind:")
    for kind, statuses in sorted(tally.by_kind.items()):
        lines.append(f"  {kind}: " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())))
    for example in tally.examples_5xx:
        lines.append(f"5xx for: {example!r}")
    if unsent:
        lines.append(f"--max-seconds ran out: {unsent} requests not sent")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Send hostile requests to an ivr-serve on loopback and count the answers; "
                    "exit 1 on any 5xx.",
        epilog="Example: python tools/fuzz_webhooks.py http://127.0.0.1:8080 --requests 100000")
    parser.add_argument("url", help="The server's base URL, on loopback (e.g. http://127.0.0.1:8080).")
    parser.add_argument("--requests", type=int, default=1000, help="How many requests (default 1000).")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the request mix (default 1).")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="Requests in flight at once, one connection each (default 50).")
    parser.add_argument("--max-seconds", type=float, default=600,
                        help="Stop sending after this long (default 600).")
    parser.add_argument("--auth-token", default=None,
                        help="Sign the valid-looking requests with this Twilio auth token.")
    args = parser.parse_args(argv)
    if args.requests < 1 or not 1 <= args.concurrency <= 2000 or args.max_seconds <= 0:
        parser.error("--requests and --max-seconds must be positive, --concurrency 1 to 2000")
    try:
        loopback_target(args.url)
    except NotLoopback as error:
        parser.exit(2, f"fuzz_webhooks: {error}\n")
    tally, seconds, unsent = asyncio.run(run(args.url, args.requests, args.seed, args.concurrency,
                                             args.max_seconds, args.auth_token))
    print(report(tally, args.url, args.requests, seconds, args.seed, args.concurrency, unsent))
    return 1 if tally.server_errors or unsent else 0


if __name__ == "__main__":
    sys.exit(main())
