"""Telling a helpdesk about callback requests: an optional webhook.

A call that asks to be called back stores its request in the call log
(``callback_requests``, written with the turn that kept the number).  With
a helpdesk URL (``--helpdesk-url``), :class:`Helpdesk` then POSTs it as
JSON, once that turn is committed::

    POST <url>
    Authorization: Bearer <IVR_HELPDESK_TOKEN>      (when the token is set)
    Content-Type: application/json

    {"call_id": "CA…", "number": "+33612345678", "reason": "parcel_lost",
     "reason_text": "The carrier lost the parcel", "order": "100555",
     "slot": "morning", "lang": "fr-FR", "requested_at": "2026-11-24T18:30:05+01:00",
     "flow": "post_sale"}

Any 2xx answer is a delivery.  A connection error, a timeout or a 5xx is
tried again after 1, 5, 30 and 120 seconds (five attempts in all) on the
injected clock; a 4xx (or another answer) is not: the helpdesk refused
this request and would refuse it again.  The row keeps the status
(``pending`` while attempts remain, then ``sent`` or ``failed``), the
attempts, the last attempt's error (none once sent) and when it was
delivered.

Each attempt is first *claimed* in the store: the row's
``last_attempt_at`` is set to the attempt's start, only if it is still
what the sender read (:meth:`ivr.store.protocol.CallStore.claim_callback`),
so of two processes about to send the same request one only does.  A
request still ``pending`` whose last attempt (or, never attempted, whose
request) is older than :func:`orphaned_after` (twice a sender's whole
retry schedule, derived from :data:`DELAYS` and :data:`TIMEOUT`) has no
live sender: the process sending it was killed, crashed or lost its host.
Every :data:`RESEND_INTERVAL` seconds, and when it starts, one server of
those sharing the store (the holder of the lease ``helpdesk-resend``, see
:class:`HelpdeskService`) sends such orphaned requests again, skipping
those it is sending itself.  A server that stops cleanly gives up the
requests it was sending (their last attempt is set to the epoch), so they
count as orphaned at once and the next run sends them.

Without a URL, :class:`NoHelpdesk` stores requests as ``not_configured``
and sends nothing; ``ivr-report callbacks`` lists them either way.

The number travels to the helpdesk in clear (it is what the helpdesk is
for) but never reaches the logs, and error texts quoting it are masked.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Callable

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet import error as net
from twisted.logger import Logger

from ivr.http_errors import CONNECTION_ERRORS, cancelled, connection_cause
from ivr.phone import mask_numbers
from ivr.store.protocol import CallStore, attempt_time

__all__ = ["DELAYS", "Helpdesk", "HelpdeskService", "NoHelpdesk", "RESEND_INTERVAL", "TIMEOUT",
           "orphaned_after"]

log = Logger()

#: Seconds before the 2nd, 3rd, 4th and 5th attempt.
DELAYS = (1, 5, 30, 120)
#: Seconds the helpdesk has to answer one attempt.
TIMEOUT = 10.0
#: Seconds between two looks for orphaned requests.  An orphan waits
#: :func:`orphaned_after` (about seven minutes) before it counts as one,
#: so looking more often would hardly send it sooner, while each look asks
#: the store for the lease; two minutes keeps its wait within ten.
RESEND_INTERVAL = 120.0

#: What a stopping sender writes as the last attempt of the requests it
#: gives up: long ago, so that they count as orphaned at once.
_GIVEN_UP = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: No last attempt given: the one this process claimed, else the one read.
_UNSEEN = object()


def orphaned_after(delays: tuple = DELAYS, timeout: float = TIMEOUT) -> float:
    """Seconds after which a pending request no process has attempted has
    no live sender: twice the longest a sender spends on one request
    (every retry's wait, every attempt's timeout).  The margin covers the
    store's own delays between attempts (a read, a claim and an update
    each, up to a few seconds on a slow PostgreSQL) and the clocks of
    hosts sharing a database that disagree by a minute or so."""
    return 2 * (sum(delays) + (len(delays) + 1) * timeout)


class _Retry(Exception):
    """This attempt failed in a way the next one may not (the message says how)."""


class _Refused(Exception):
    """The helpdesk answered, and not with a 2xx: trying again will not help."""


class NoHelpdesk:
    """No helpdesk configured: requests are stored ``not_configured``."""

    initial_status = "not_configured"

    def requested(self, call_id: str) -> None:
        """Nothing to tell."""

    def resend_orphaned(self) -> int:
        return 0

    def stop(self) -> None:
        """Nothing in flight."""


class Helpdesk:
    """POSTs the callback requests of ``store`` to ``url``.

    ``registry`` (a :class:`ivr.server.registry.FlowRegistry`, optional) gives
    each reason's description; ``http`` (anything with treq's ``post``,
    e.g. ``treq.testing.StubTreq``) replaces the connections made on
    ``clock`` (the reactor), which also times attempts out and spaces
    the retries.  ``in_thread`` (a function running a store call off the
    reactor's thread and returning its Deferred: PostgreSQL's reads) runs
    the store's reads and writes; without it they run at once.
    """

    initial_status = "pending"

    def __init__(self, url: str, store: CallStore, clock, *, token: str | None = None, registry=None,
                 http=None, timeout: float = TIMEOUT, delays: tuple = DELAYS, in_thread=None):
        self.url, self.store, self.clock, self.registry = url, store, clock, registry
        self.in_thread = in_thread
        self.timeout, self.delays = timeout, tuple(delays)
        self.pool = None
        if http is None:
            http, self.pool = _treq_client(clock)
        self.http = http
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        #: Calls being sent: the request in flight, or the timer of the next attempt.
        self._active: dict = {}
        #: Calls being sent -> the start of the attempt this process claimed
        #: last (given up on stop, compared when it claims the next).
        self._claims: dict[str, str] = {}
        self.orphaned_after = orphaned_after(self.delays, self.timeout)

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def requested(self, call_id: str) -> None:
        """Send ``call_id``'s request, unless it is already on its way or
        no longer pending.  Call it once the request is committed."""
        if call_id not in self._active:
            self._attempt(call_id)

    def resend_orphaned(self) -> defer.Deferred:
        """Send the pending requests no live process is sending (see the
        module's docstring), except those this process is sending: a
        Deferred of how many were found (0 when the store cannot say).
        It never fails: it runs from a timer."""
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        cutoff = now - timedelta(seconds=self.orphaned_after)
        return self._stored(self.store.orphaned_callbacks, cutoff).addCallbacks(
            self._resend, self._store_failed, errbackArgs=("orphaned requests", 0))

    def _resend(self, orphans: list) -> int:
        orphans = [(call_id, seen) for call_id, seen in orphans if call_id not in self._active]
        for call_id, seen in orphans:
            self._attempt(call_id, seen)
        if orphans:
            log.info("helpdesk: sending again {count} callback requests left pending by a "
                     "process that stopped or died", count=len(orphans))
        return len(orphans)

    def _stored(self, method, *args, **kwargs) -> defer.Deferred:
        """A store call: in ``in_thread`` when given, else at once."""
        if self.in_thread is None:
            return defer.maybeDeferred(method, *args, **kwargs)
        return self.in_thread(partial(method, *args, **kwargs))

    @staticmethod
    def _store_failed(failure, what: str, result=None):
        log.failure("helpdesk: the store could not be asked for the {what}", failure, what=what)
        return result

    def stop(self) -> defer.Deferred:
        """Cancel what is in flight and the retries waiting, and give those
        requests up: they stay ``pending``, orphaned at once, and the next
        run of any server sends them."""
        active, self._active = self._active, {}
        for pending in active.values():
            pending.cancel()
        claims, self._claims = self._claims, {}
        given_up = [self._stored(self.store.claim_callback, call_id, at, _GIVEN_UP).addErrback(
            self._store_failed, f"release of {call_id}'s request") for call_id, at in claims.items()]
        closed = self.pool.closeCachedConnections() if self.pool else defer.succeed(None)
        return defer.DeferredList(given_up).addCallback(lambda _: closed)

    # -- one attempt ------------------------------------------------------------------
    def _attempt(self, call_id: str, seen: object = _UNSEEN) -> None:
        """Read ``call_id``'s request, claim its next attempt, send it.
        ``seen``: the last attempt an orphan was found with (else the one
        this process claimed, else the one read)."""
        reading = self._active[call_id] = self._stored(self.store.callback_request, call_id)
        reading.addCallbacks(self._claim, self._not_read,
                             callbackArgs=(call_id, reading, seen), errbackArgs=(call_id, reading))

    def _not_read(self, failure, call_id: str, reading) -> None:
        if self._active.get(call_id) is reading:
            del self._active[call_id]  # the next requested() tries again
        self._store_failed(failure, "request")

    def _claim(self, request: dict | None, call_id: str, reading, seen) -> None:
        if self._active.get(call_id) is not reading:
            return  # stopped while it was read
        del self._active[call_id]
        if request is None or request["status"] != "pending":
            self._claims.pop(call_id, None)
            return
        if seen is _UNSEEN:
            seen = self._claims.get(call_id, request["last_attempt_at"])
        at = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        # Known before it is written: a stop meanwhile gives it up.
        self._claims[call_id] = attempt_time(at)
        claiming = self._active[call_id] = self._stored(self.store.claim_callback, call_id, seen, at)
        claiming.addCallbacks(self._claimed, self._not_claimed,
                              callbackArgs=(request, call_id, claiming), errbackArgs=(call_id, claiming))

    def _not_claimed(self, failure, call_id: str, claiming) -> None:
        if self._active.get(call_id) is claiming:
            self._claims.pop(call_id, None)  # written or not: the next claim reads which
        self._not_read(failure, call_id, claiming)

    def _claimed(self, claimed: bool, request: dict, call_id: str, claiming) -> None:
        if self._active.get(call_id) is not claiming:
            return  # stopped while it was claimed
        del self._active[call_id]
        if not claimed:
            self._claims.pop(call_id, None)
            log.info("helpdesk: callback request {call} is being sent by another process",
                     call=call_id)
            return
        self._send(request, call_id)

    def _send(self, request: dict, call_id: str) -> None:
        attempt = request["attempts"] + 1
        d = defer.Deferred.fromCoroutine(self._post(self._payload(request)))
        d.addTimeout(self.timeout, self.clock)
        self._active[call_id] = d
        d.addCallbacks(self._delivered, self._failed, callbackArgs=(call_id, attempt, d),
                       errbackArgs=(call_id, attempt, d))

    def _payload(self, request: dict) -> dict:
        return {
            "call_id": request["call_id"], "number": request["number"],
            "reason": request["reason"], "reason_text": self._reason_text(request),
            "order": request["order_number"], "slot": request["slot"], "lang": request["lang"],
            "requested_at": request["requested_at"], "flow": request["flow"],
        }

    def _reason_text(self, request: dict) -> str | None:
        if self.registry is None:
            return None
        flow = (self.registry.version(request["flow"], request["version"])
                or self.registry.current(request["flow"]))
        return flow.reason_text(request["reason"], request["lang"]) if flow else None

    async def _post(self, payload: dict) -> None:
        try:
            response = await self.http.post(self.url, data=json.dumps(payload).encode("utf-8"),
                                            headers=self.headers, allow_redirects=False)
        except (net.TimeoutError, net.TCPTimedOutError) as failure:
            raise _Retry(f"connect timeout ({type(failure).__name__})") from None
        except CONNECTION_ERRORS as failure:
            if cancelled(failure):
                raise defer.CancelledError() from None
            raise _Retry(connection_cause(failure, "the helpdesk")) from None
        try:
            body = await response.content()
        except Exception as failure:  # noqa: BLE001 - the answer did not arrive whole
            if cancelled(failure):
                raise defer.CancelledError() from None
            if 200 <= response.code < 300:
                return  # the helpdesk said yes before the line broke
            body = b""
        if 200 <= response.code < 300:
            return
        text = body[:200].decode("utf-8", "replace").strip()
        cause = f"HTTP {response.code}" + (f": {text}" if text else "")
        raise (_Retry if response.code >= 500 else _Refused)(cause)

    def _delivered(self, _result, call_id: str, attempt: int, d) -> None:
        if self._active.get(call_id) is d:
            del self._active[call_id]
        self._claims.pop(call_id, None)
        self._update(call_id, "sent", attempt, delivered_at=self._now())
        log.info("helpdesk: callback request {call} sent (attempt {attempt})", call=call_id,
                 attempt=attempt)

    def _failed(self, failure, call_id: str, attempt: int, d) -> None:
        if failure.check(defer.CancelledError):
            return None  # stopped: the request is given up, pending, for the next run
        if self._active.get(call_id) is d:
            del self._active[call_id]
        retry = failure.check(_Retry, defer.TimeoutError) is not None
        if failure.check(defer.TimeoutError):
            cause = f"timeout after {self.timeout:g} s"
        elif failure.check(_Retry, _Refused):
            cause = str(failure.value)
        else:  # no traceback: it could show the number
            cause = f"unexpected error: {failure.type.__name__}: {failure.value}"
        cause = mask_numbers(cause)
        if retry and attempt < self.max_attempts:
            delay = self.delays[attempt - 1]
            self._update(call_id, "pending", attempt, last_error=cause)
            self._active[call_id] = self.clock.callLater(delay, self._attempt, call_id)
            log.warn("helpdesk: callback request {call} attempt {attempt} failed: {cause}; "
                     "next in {delay} s", call=call_id, attempt=attempt, cause=cause, delay=delay)
            return None
        self._claims.pop(call_id, None)
        self._update(call_id, "failed", attempt, last_error=cause)
        log.error("helpdesk: callback request {call} not sent after {attempt} attempts: {cause}",
                  call=call_id, attempt=attempt, cause=cause)
        return None

    def _update(self, call_id: str, status: str, attempt: int, **fields) -> None:
        self._stored(self.store.update_callback, call_id, status, attempt, **fields).addErrback(
            self._store_failed, f"status of {call_id}'s request")

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc).isoformat(timespec="seconds")


class HelpdeskService(service.Service):
    """Sends the orphaned requests (see the module's docstring) when the
    server starts and every ``interval`` seconds on the helpdesk's clock
    (None: at start only), unless ``may_resend`` refuses (another server
    process sharing the store does it: the lease ``helpdesk-resend``, asked
    and renewed at each run); gives up what is in flight when it stops,
    and calls ``release`` (the lease ``may_resend`` took is given up, so
    that the next run of another server, or the next start, sends them
    however soon it comes).  A run never fails: a store that cannot be
    asked is logged, and the next run asks again."""

    def __init__(self, helpdesk, may_resend: Callable[[], object] = lambda: True,
                 release: Callable[[], object] = lambda: None,
                 interval: float | None = RESEND_INTERVAL):
        self.helpdesk, self.may_resend, self.release = helpdesk, may_resend, release
        self.interval = interval
        self._loop: task.LoopingCall | None = None

    def startService(self):
        super().startService()
        if self.interval is None or isinstance(self.helpdesk, NoHelpdesk):
            self.run()  # at start only
            return
        self._loop = task.LoopingCall(self.run)
        self._loop.clock = self.helpdesk.clock
        self._loop.start(self.interval, now=True)

    def run(self) -> defer.Deferred:
        """One look for orphaned requests, if this process may: a Deferred
        that never fails (``may_resend`` may answer later, a lease asked
        off the reactor)."""
        return defer.maybeDeferred(self.may_resend).addCallback(
            lambda may: self.helpdesk.resend_orphaned() if may else None).addErrback(
            lambda failure: log.failure("helpdesk: orphaned requests not sent again", failure))

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        # Both asked now, while the store's threads still run (they stop
        # after this service); the requests given up first.
        stopped = defer.maybeDeferred(self.helpdesk.stop)
        released = defer.maybeDeferred(self.release)  # never fails
        return released.addCallback(lambda _: stopped)


def _treq_client(reactor):
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 2
    return HTTPClient(Agent(reactor, pool=pool)), pool
