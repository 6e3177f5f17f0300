"""Held turns: a turn whose look-ups outlast a moment plays the flow's hold
prompt and the provider polls until the answer is ready (or the caller is gone)."""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.engine import actions as act
from ivr.server.logs import flush_log_lines

#: Seconds a turn's look-ups may take before the caller hears the flow's
#: ``hold`` prompt, then a pause of HOLD_PAUSE seconds before the poll.
HOLD_AFTER = 1.5


HOLD_PAUSE = 2


#: How many held turns' hold answers are kept for late retries.
MAX_HOLD_ANSWERS = 10_000


class PollsElsewhere:
    """Polls for a held turn this process does not hold: with several
    server processes on one store, the caller's poll may reach another
    process than the one playing the turn.  It is answered with another
    pause until the turn's answer is in the store, at most ``most`` times
    per turn in each process (the turn's process may have died): then
    the caller hears the last question again, as after a restart."""

    def __init__(self, most: int, kept: int = MAX_HOLD_ANSWERS):
        self.most, self.kept = most, kept
        self._seen: OrderedDict[tuple[str, int], int] = OrderedDict()

    @classmethod
    def bounded(cls, lookup_timeout: float, hold_after: float, margin: float) -> "PollsElsewhere":
        """As many polls as a held turn can last, in pauses: its look-ups'
        timeout, then the wait for the caller to come back for the answer
        (a pause, ``hold_after`` and ``margin``), which the polls reaching
        another process do not cut short."""
        return cls(int((lookup_timeout + HOLD_PAUSE + 2 * hold_after + margin) / HOLD_PAUSE) + 2)

    def wait(self, call_id: str, turn: int) -> bool:
        """Whether this poll of ``turn`` should wait again."""
        if self.most <= 0:
            return False
        key = (call_id, turn)
        seen = self._seen.pop(key, 0) + 1
        self._seen[key] = seen
        if len(self._seen) > self.kept:
            self._seen.popitem(last=False)
        return seen <= self.most


class _Round:
    """One answer shared by every request that asks while it is open: all
    of them get the same bytes (or the same failure)."""

    def __init__(self):
        self.answer = None  # bytes, or the turn's Failure, once settled
        self.timer = None
        self._waiting: list[defer.Deferred] = []

    @property
    def settled(self) -> bool:
        return self.answer is not None

    def settle(self, answer) -> None:
        if self.settled:
            return
        self.answer = answer
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            self._fire(waiter)

    def wait(self) -> defer.Deferred:
        """A Deferred firing with the answer once settled."""
        waiter = defer.Deferred(lambda d: d in self._waiting and self._waiting.remove(d))
        if self.settled:
            self._fire(waiter)
        else:
            self._waiting.append(waiter)
        return waiter

    def _fire(self, waiter):
        if isinstance(self.answer, Failure):
            waiter.errback(self.answer)
        else:
            waiter.callback(self.answer)


def server_say(flow, lang: str | None, name: str) -> act.Say | None:
    """One of the prompts the server says itself (``hold``,
    ``failsafe_apology``: see ivr.flow.prompts.FIXED_SERVER_PROMPTS), as the
    flow rendered it when it loaded, in the flow's voice for ``lang``;
    None without a flow or that language."""
    text = flow.server_says.get(lang, {}).get(name) if flow is not None and lang else None
    if not text:
        return None
    return act.Say(text, voice=flow.voices.get(lang), language=lang)


class Held:
    """A turn whose look-ups may outlast ``hold_after`` seconds.

    Its request, and every retry of it, get one answer (the *opening*):
    the turn's TwiML if it is ready within ``hold_after``, else the hold
    ``hold_twiml(self, True)`` gives.  Polls (the caller coming back from
    the hold) share answers the same way, one poll round at a time: the
    TwiML once it is ready, else ``hold_twiml(self, False)`` after
    ``hold_after``.  ``hold_twiml`` returns None when the turn must not
    hold (only its commit is left): the answer then waits for the turn.
    So concurrent retries never get different bytes.  With ``hold_after``
    None (the turn waits only for its commit) no round ever holds."""

    def __init__(self, call_id: str, turn: int, work: defer.Deferred, say: act.Say | None, *,
                 clock, hold_after: float | None, hold_twiml):
        self.call_id, self.turn = call_id, turn
        #: What the caller hears the first time they are put on hold.
        self.say = say
        self.clock, self.hold_after, self.hold_twiml = clock, hold_after, hold_twiml
        self.result = None
        self._finished: _Round | None = None  # made when first asked for
        self.opening = self._round(True)
        self._polling: _Round | None = None
        #: Holds answered so far (the opening's and the polls').
        self.holds = 0
        #: The provider said the call ended while the turn ran: its
        #: answer will never be heard.
        self.hung_up = False
        #: Waiting to know whether the caller, between two holds, comes back.
        self._presence: list[defer.Deferred] = []
        work.addBoth(self._done)

    @property
    def done(self) -> bool:
        return self.result is not None

    def _round(self, opening: bool) -> _Round:
        round_ = _Round()
        if self.hold_after is not None:  # None: only the commit is left, which never holds
            round_.timer = self.clock.callLater(self.hold_after, self._time_up, round_, opening)
        return round_

    def _time_up(self, round_: _Round, opening: bool) -> None:
        round_.timer = None
        hold = self.hold_twiml(self, opening)
        if hold is not None:
            self.holds += 1
            round_.settle(hold)
            # A timed call: the reactor sends the hold at the end of this
            # pass, and would write its log line only at the next one.
            flush_log_lines()

    def _done(self, result):
        self.result = result
        for round_ in (self.opening, self._polling, self._finished):
            if round_ is not None:
                round_.settle(result)

    def join(self) -> defer.Deferred:
        """The answer for the turn's request or a retry of it (the opening)."""
        return self.opening.wait()

    def poll(self) -> defer.Deferred:
        """The answer for a poll: joins the open poll round, or starts one.
        A poll is the caller back from the hold's pause."""
        self._presence_known(self.hung_up)  # may finish the turn at once
        if self._polling is None or self._polling.settled:
            if self.done:
                return self.finished()
            self._polling = self._round(False)
        return self._polling.wait()

    def finished(self) -> defer.Deferred:
        """A Deferred firing with the turn's TwiML (or failing) once it is done."""
        if self._finished is None:
            self._finished = _Round()
            if self.done:
                self._finished.settle(self.result)
        return self._finished.wait()

    def hang_up(self) -> None:
        """The provider says the call ended: the turn's answer will never be heard."""
        self.hung_up = True
        self._presence_known(True)

    def caller_gone(self, seconds: float) -> defer.Deferred:
        """Whether the caller left before hearing the answer: True once
        the provider said the call ended; False at once while a request
        waits for the answer (or none was put on hold).  Between two holds
        (the caller hears a pause), it fires when the caller comes back
        (False) or hangs up (True), or False after ``seconds``."""
        if self.hung_up:
            return defer.succeed(True)
        if self.holds == 0 or self._request_waiting():
            return defer.succeed(False)
        asked = defer.Deferred()
        self._presence.append(asked)
        timer = self.clock.callLater(seconds, self._presence_known, False)
        asked.addBoth(lambda gone: (timer.active() and timer.cancel(), gone)[1])
        return asked

    def _request_waiting(self) -> bool:
        """Whether a request of the caller's waits for an answer now."""
        return not self.opening.settled or (self._polling is not None and not self._polling.settled)

    def _presence_known(self, gone: bool) -> None:
        asked, self._presence = self._presence, []
        for waiter in asked:
            waiter.callback(gone)
