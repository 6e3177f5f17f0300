"""Playing the traffic's planned calls as a provider plays them.

:class:`TrafficPlayer` plays each :class:`ivr.sim.traffic_plan.PlannedCall`
through the fake of the provider it names (the registry's
:class:`ivr.providers.fake_call.FakeCall`): the fake shapes every request
as its provider sends it (form fields or JSON, GET or POST) and plays the
answer as its provider would; each request goes straight to the handler,
read by the provider's own dialect as its route reads it
(``parse`` then ``check``), at the call's simulated time.

A step followed by ``hold`` or a hang-up on hold is sent with its look-ups
held back (:class:`_Hold`): the handler's clock is advanced past the
hold's wait, the caller hears "one moment", and the provider comes back
for the answer (its redirect, or Vonage's notify, to the poll URL) once
the look-ups answered, or hangs up first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.providers.bodies import parse_form
from ivr.providers.dialect import Refusal, WebhookRequest
from ivr.providers.fake_call import FakeCall, HttpRequest, MarkupError
from ivr.providers.registry import provider as registered
from ivr.server.calls import CallHandler
from ivr.server.served import Served
from ivr.sim.provider_steps import ProviderGaps
from ivr.sim.traffic_behaviours import TrafficError
from ivr.sim.traffic_plan import PlannedCall, later

CALLED = "+33100000000"
#: The server's URL for the providers whose documents need absolute URLs
#: (Plivo, Vonage); the others get URLs relative to the request, as the
#: server writes them with no public URL configured.
BASE_URL = "https://ivr.traffic.invalid"
#: Steps that hang up while the step before them is on hold.
HOLD_HANG_UPS = ("hangup on hold", "hangup on hold answered")
#: Seconds an answered or failed transfer waited in the agents' queue.
QUEUE_SECONDS = 30
#: What the call waits for before each kind of step.
_WAITS = {"say": "gather", "silence": "gather", "dial": "dial", "record": "record"}


def queue_wait_unreported(providers, flow) -> frozenset[str]:
    """Those of ``providers`` that cannot say how long a caller of ``flow``
    waited in the agents' queue: they have no queue (the gap
    ``provider-no-queue`` of their dialect) and dial instead."""
    return frozenset(name for name in providers
                     if any(gap.code == "provider-no-queue" for gap in ProviderGaps.of(name, flow).gaps))


class _LeftOnHold(Exception):
    """The caller hangs up on hold instead of coming back for the answer."""


@dataclass
class _Hold:
    """A step sent with its look-ups held back: ``back_at`` is when the
    caller comes back for the answer (None: they hang up instead)."""

    call: PlannedCall
    index: int
    back_at: datetime | None
    opened: bool = False
    came_back: bool = False


class Lookups:
    """The embedded order look-ups, answered at once, or, while ``slow``,
    only when :meth:`answer` is called: a look-up that keeps its caller on
    hold."""

    def __init__(self, perform):
        self._perform = perform
        self.slow = False
        self.pending: list = []

    def perform(self, lookup, now):
        if not self.slow:
            return self._perform(lookup, now)
        answer = defer.Deferred()
        self.pending.append((answer, lookup, now))
        return answer

    def answer(self) -> None:
        """Answer the look-ups held back, as they would have answered."""
        self.slow = False
        pending, self.pending = self.pending, []
        for answer, lookup, now in pending:
            answer.callback(self._perform(lookup, now))


class TrafficPlayer:
    """Plays planned calls to ``handler``'s flow ``flow_name``, each as
    the provider its ``provider`` names plays it."""

    def __init__(self, handler: CallHandler, flow_name: str, lookups: Lookups):
        self.handler, self.flow_name, self.lookups = handler, flow_name, lookups
        #: The time of the request being sent.
        self._now: datetime | None = None
        self._served: Served | None = None
        self._hold: _Hold | None = None
        #: Status callbacks sent and not yet taken (only while on hold).
        self._statuses: list = []
        self._served_by: dict[str, Served] = {}
        #: Each provider's gaps for the flow, once asked.
        self._gaps: dict[str, ProviderGaps] = {}

    def play(self, call: PlannedCall) -> None:
        """Play ``call`` from its first request to its status callback."""
        fake = self._fake(call)
        self._now = call.start
        self._perform(fake, lambda: fake.answer(self.handler.action_url(
            self.flow_name, 0, self._served).split("?")[0]))
        steps = call.spec.steps
        for index, step in enumerate(steps):
            self._now = later(call.start, call.times[index])
            if step == "hangup":
                if fake.next is None or fake.next.wait == "over":
                    raise _misfit(call, index, "the call is already over")
                break
            if step == "hold" or step in HOLD_HANG_UPS:
                if index == 0 or steps[index - 1] in ("hangup", "hold", *HOLD_HANG_UPS):
                    raise _misfit(call, index, "a hold must follow the step put on hold")
                continue  # played with the step before it
            following = steps[index + 1] if index + 1 < len(steps) else None
            if following in HOLD_HANG_UPS:
                return self._hang_up_on_hold(call, index, fake)
            if self._cannot_play(call, step, fake):
                continue
            if following == "hold":
                self._hold = _Hold(call, index, later(call.start, call.times[index + 1]))
            self._step(call, index, step, fake)
            self._came_back(call, index)
            if step == "silence" and fake.next is not None and fake.next.wait == "over":
                break  # nothing after the question: the provider hung up
            if step == "dial canceled":
                # The caller hung up in the queue: whatever the provider
                # would play next (Vonage goes on with the NCCO), nobody hears it.
                break
        else:
            waits = fake.next.wait if fake.next is not None else "its first answer"
            if waits != "over":
                raise _misfit(call, len(steps), f"the call still waits for {waits}")
        self._hang_up(call, fake)

    # -- the calls and their steps -----------------------------------------------------
    def _cannot_play(self, call: PlannedCall, step: str, fake: FakeCall) -> bool:
        """Whether ``step`` is an input the call's provider cannot take at
        the node the flow asks it (a gap of its dialect: jambonz keeps no
        voicemail, and the flow goes on without waiting for one)."""
        kind = step.partition(" ")[0]
        if fake.next is not None and fake.next.wait == _WAITS.get(kind):
            return False
        gaps = self._gaps.get(call.provider)
        if gaps is None:
            flow = self.handler.registry.current(self.flow_name)
            gaps = self._gaps[call.provider] = ProviderGaps.of(call.provider, flow)
        return gaps.blocking_input(kind, call.spec.nodes) is not None

    def _fake(self, call: PlannedCall) -> FakeCall:
        """A fresh fake call of the call's provider, with the call's own id."""
        entry = registered(call.provider)
        served = self._served = self._served_by.get(call.provider) or self._serve(entry)
        fake = entry.fake(self._send, call.caller, CALLED, served.base or "", None)
        fake.call_id = call.call_id
        if hasattr(fake, "clock"):
            # The fakes that date their requests read it: the simulated time.
            fake.clock = self._seconds
        return fake

    def _serve(self, entry) -> Served:
        """The provider as the server serves it, unsigned: its dialect and
        routes, and the server's URL when its documents need absolute ones."""
        dialect = entry.dialect()
        served = Served(dialect, entry.prefix, None, BASE_URL if dialect.absolute_urls else None)
        self._served_by[entry.name] = served
        return served

    def _seconds(self) -> float:
        return self._now.timestamp() if self._now is not None else 0.0

    def _step(self, call: PlannedCall, index: int, step: str, fake: FakeCall) -> None:
        """Play one script step of ``call`` through ``fake``."""
        word, _, rest = step.partition(" ")
        wanted = _WAITS.get(word, "gather")
        waits = fake.next.wait if fake.next is not None else "its first answer"
        if waits != wanted:
            raise _misfit(call, index, f"the call waits for {waits}")
        if word == "say":
            self._perform(fake, lambda: fake.say(rest))
        elif word == "silence":
            self._perform(fake, fake.silence)
        elif word == "dial":
            queued = fake.next is not None and fake.next.queue
            waited = call.queue_seconds(index) if queued and rest == "canceled" else QUEUE_SECONDS
            self._perform(fake, lambda: fake.transfer_ends(rest, waited))
        elif word == "record":
            self._perform(fake, lambda: fake.record(int(rest)))
        else:
            self._perform(fake, lambda: fake.press(step))

    @staticmethod
    def _perform(fake: FakeCall, act) -> None:
        """Run one of the fake's moves; what it could not play is the call's error."""
        try:
            act()
        except MarkupError as error:
            raise TrafficError(f"{fake.call_id}: {error}") from None

    def _came_back(self, call: PlannedCall, index: int) -> None:
        """A step put on hold: the caller must have come back for its answer."""
        hold, self._hold = self._hold, None
        if hold is not None and not hold.came_back:
            raise _misfit(call, index, "the caller never came back for the answer")

    def _hang_up(self, call: PlannedCall, fake: FakeCall) -> None:
        """The provider's end-of-call notice, when the script's last step is done."""
        end = later(call.start, call.times[-1])
        self._now = end
        self._perform(fake, lambda: fake.hang_up(call.times[-1], end))
        self._taken(call)

    def _hang_up_on_hold(self, call: PlannedCall, index: int, fake: FakeCall) -> None:
        """Play step ``index`` with its look-ups held back past the hold's
        wait: the caller hears "one moment" and a pause, then hangs up,
        before the look-ups answer or (``hangup on hold answered``) after
        they answered during the pause.  The status callback waits for
        the turn, as the server's does."""
        hold = self._hold = _Hold(call, index, None)
        try:
            self._step(call, index, call.spec.steps[index], fake)
        except _LeftOnHold:
            pass
        finally:
            self._hold = None
        if not hold.opened:
            raise _misfit(call, index, "the caller was not put on hold")
        answered_first = call.spec.steps[index + 1] == "hangup on hold answered"
        if answered_first:
            self.lookups.answer()
        end = later(call.start, call.times[-1])
        self._now = end
        self._perform(fake, lambda: fake.hang_up(call.times[-1], end))
        if not answered_first:
            self.lookups.answer()
        self._taken(call)

    def _taken(self, call: PlannedCall) -> None:
        """Every status callback sent was taken (or raise what it failed with)."""
        statuses, self._statuses = self._statuses, []
        for status in statuses:
            if not status:
                raise TrafficError(f"{call.call_id}: the status callback was never taken")
            _answered(status)

    # -- requests, straight to the handler ---------------------------------------------
    def _send(self, request: HttpRequest) -> bytes:
        """One of the fake's requests, read by the provider's dialect and
        answered by the handler."""
        served = self._served
        assert served is not None and self._now is not None
        parts = urlsplit(request.url)
        path = parts.path
        if path.endswith("/status"):
            status: list = []
            defer.ensureDeferred(self.handler.status_committed(
                self._params(request, served.dialect.status_fields), self._now, served)
            ).addBoth(status.append)
            self._statuses.append(status)
            return b""
        if path.endswith("/whisper"):
            self._params(request, served.dialect.voice_fields)
            heard: list = []
            defer.maybeDeferred(self.handler.whisper, served.dialect.check(parse_form(parts.query)),
                                served).addBoth(heard.append)
            return _answered(heard)
        query = parse_qs(parts.query)
        turn = int(query.get("turn", ["0"])[-1])
        poll = query.get("hold") == ["1"]  # back from a hold
        return self._voice(turn, poll, self._params(request, served.dialect.voice_fields))

    def _params(self, request: HttpRequest, required: tuple[str, ...]) -> dict:
        """The request's parameters, as the provider's route reads them."""
        served = self._served
        assert served is not None and self._now is not None
        headers = {name.lower().encode("ascii"): value.encode("utf-8")
                   for name, value in request.headers.items()}
        content_type = headers.get(b"content-type", b"").decode("ascii").split(";")[0].strip().lower()
        webhook = WebhookRequest(request.method, request.url, content_type, request.body,
                                 parse_form(urlsplit(request.url).query), headers.get,
                                 self._now.timestamp())
        try:
            return served.dialect.check(served.dialect.parse(webhook), required)
        except Refusal as refusal:
            raise TrafficError(f"{served.name} request to {request.url} refused: {refusal.reason}") from None

    def _voice(self, turn: int, poll: bool, params: dict) -> bytes:
        hold = self._hold
        if hold is not None and not hold.opened:
            hold.opened = True
            return self._put_on_hold(hold, turn, params)
        if hold is not None and poll:
            if hold.back_at is None:
                raise _LeftOnHold()
            self.lookups.answer()  # during the hold's pause
            self._now, hold.came_back = hold.back_at, True
            answered = self._start_voice(turn, params, poll=True)
            if not answered:
                raise _misfit(hold.call, hold.index + 1, "the answer was not ready when the caller came back")
            return _answered(answered)
        answered = self._start_voice(turn, params, poll)
        if not answered:
            raise TrafficError("a turn did not answer at once: the embedded look-ups should never wait")
        return _answered(answered)

    def _put_on_hold(self, hold: _Hold, turn: int, params: dict) -> bytes:
        """Send the step's request with its look-ups held back past the
        hold's wait: the hold's document ("one moment", a pause, the way
        back to the poll URL)."""
        self.lookups.slow = True
        opening = self._start_voice(turn, params)
        if opening or not self.lookups.pending:
            self.lookups.slow = False
            raise _misfit(hold.call, hold.index, "the step has no look-up to wait for")
        self.handler.clock.advance(self.handler.hold_after)
        if not opening or b"hold=1" not in _answered(opening):
            raise _misfit(hold.call, hold.index, "the caller was not put on hold")
        return _answered(opening)

    def _start_voice(self, turn: int, params: dict, poll: bool = False) -> list:
        """Send a voice webhook: a list that gets its answer (or failure)."""
        answered: list = []
        defer.ensureDeferred(self.handler.voice(self.flow_name, turn, params, now=self._now,
                                                poll=poll, served=self._served)
                             ).addBoth(answered.append)
        return answered


def _answered(answered: list):
    if isinstance(answered[0], Failure):
        answered[0].raiseException()
    return answered[0]


def _misfit(call: PlannedCall, index: int, why: str) -> TrafficError:
    steps = call.spec.steps
    step = steps[index] if index < len(steps) else "(end of script)"
    return TrafficError(f"behaviour {call.behaviour!r} no longer fits the flow: "
                        f"step {index + 1} ({step}): {why}")
