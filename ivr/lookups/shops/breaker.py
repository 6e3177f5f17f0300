"""A circuit breaker: stop waiting on a shop that is down.

When the shop's API fails ``failures`` times in a row, every caller would
otherwise wait the full timeout before going to an agent.  The breaker
*opens* instead: look-ups answer "circuit open" at once for ``cooldown``
seconds.  Then it lets one trial request through (*half-open*); success
closes it, failure opens it for another cool-down.

Time comes from an injected ``IReactorTime`` and is only read, never
scheduled: the breaker leaves no timer behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.logger import Logger

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

#: (state, event) -> next state.  Events: "success", "failure", "cooled"
#: (the cool-down is over and a request asks to go through).
TRANSITIONS = {
    (CLOSED, "success"): CLOSED,
    (CLOSED, "failure"): CLOSED,       # counted; opens at the threshold (see record_failure)
    (OPEN, "cooled"): HALF_OPEN,
    (OPEN, "success"): OPEN,           # a request sent before it opened came back late
    (OPEN, "failure"): OPEN,
    (HALF_OPEN, "success"): CLOSED,
    (HALF_OPEN, "failure"): OPEN,
}


@dataclass
class CircuitBreaker:
    clock: object                # IReactorTime
    failures: int = 5
    cooldown: float = 30.0
    name: str = "shop"
    state: str = CLOSED
    consecutive: int = 0
    opened_at: float = 0.0
    trial_pending: bool = False

    log = Logger()

    def allow(self) -> bool:
        """Whether a request may go to the shop now.  In the half-open
        state only one trial request is let through at a time."""
        if self.state == OPEN and self.clock.seconds() >= self.opened_at + self.cooldown:
            self._move("cooled")
            self.log.info("{name}: circuit half-open, trying one request", name=self.name)
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.trial_pending:
            self.trial_pending = True
            return True
        return False

    def record_success(self) -> None:
        """The shop answered."""
        was = self.state
        self.consecutive = 0
        self._move("success")
        if was == HALF_OPEN:
            self.log.info("{name}: circuit closed, the shop answers again", name=self.name)

    def record_failure(self) -> None:
        """The shop did not answer usefully (down, slow, refusing us)."""
        was = self.state
        self.consecutive += 1
        self._move("failure")
        if was == HALF_OPEN or (was == CLOSED and self.consecutive >= self.failures):
            self.state, self.opened_at = OPEN, self.clock.seconds()
            self.log.warn("{name}: circuit open after {count} failures in a row; look-ups answer "
                          "'circuit open' for {cooldown} s", name=self.name,
                          count=self.consecutive, cooldown=self.cooldown)

    def _move(self, event: str) -> None:
        if self.state == HALF_OPEN:
            self.trial_pending = False
        self.state = TRANSITIONS[(self.state, event)]
