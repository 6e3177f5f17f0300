"""A turn in play, from the engine's answer to the committed document,
without a coroutine or a Deferred where none is needed.

Most turns need no wait before their commit: their state is in memory
or read at once, and their look-ups (if any) answer at once.  Such a turn
runs synchronously up to the commit, and with group commit its request
waits on that commit's Deferred alone: the :class:`TurnInPlay` itself,
kept by the handler until then, gives the same answer to its retries,
its polls and its call's status callback (see :meth:`TurnInPlay.join`).
A turn whose look-up answers later goes on where it waits, driven by
Twisted (see :func:`ivr.engine.turn.play_turn_now`).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.engine.actions import Dial
from ivr.server.storage_faults import _both
from ivr.store.sqlite.group_commit import fire


class TurnInPlay:
    """One turn of a call between the engine and the answer: renders the
    played turn in the provider's markup (the fail-safe when it failed),
    commits it and returns the document, or a Deferred of it.  While it
    waits for a group commit, requests of the call may join it."""

    __slots__ = ("handler", "call_id", "turn", "flow", "state", "event", "url", "dialect",
                 "storing", "pending", "played_turn", "joined")

    def __init__(self, handler, call_id: str, turn: int, flow, state, event: dict, url: str,
                 dialect, storing: list | None):
        self.handler, self.call_id, self.turn = handler, call_id, turn
        self.flow, self.state, self.event, self.url = flow, state, event, url
        self.dialect, self.storing = dialect, storing
        self.pending = self.played_turn = None  # set when it goes to a group commit
        #: Requests waiting for its committed answer besides its own.
        self.joined: list[defer.Deferred] | None = None

    def played(self, result, served) -> bytes | defer.Deferred:
        """The engine's :class:`ivr.engine.turn.Turn`: rendered and committed."""
        try:
            handler = self.handler
            # Only a transfer to a number is changed (the agent's whisper).
            actions = [handler._with_whisper(a, served) if isinstance(a, Dial) else a
                       for a in result.actions]
            body = self.dialect.render(actions, self.url)
        except Exception:  # noqa: BLE001 - the caller must reach a human
            return self.failed(Failure())
        return self.commit(result.state, body, result.node_events)

    def failed(self, failure: Failure) -> bytes | defer.Deferred:
        """The turn failed: the caller is put through to a human, committed."""
        handler = self.handler
        handler.log.failure("turn {call} {turn} failed; routing to a human", failure,
                            call=self.call_id, turn=self.turn)
        new_state, body, node_events = handler._fail_safe(
            self.flow, self.state, self.event, self.url, self.dialect, failure.value)
        return self.commit(new_state, body, node_events)

    def commit(self, new_state: dict, body: bytes, node_events: list) -> bytes | defer.Deferred:
        """Write the turn (after the call's turns answered from memory):
        now without group commit, else in the next group."""
        handler = self.handler
        pending = handler._unsaved.get(self.call_id)
        write = handler._writer(self.call_id, self.turn, new_state, body, node_events)
        if pending is not None:  # the call's turns answered from memory are written first
            write = _both(pending.write, write)
        played = (new_state, body, node_events)
        if handler.group_commit is None:
            try:
                write()
            except Exception as error:  # noqa: BLE001 - the caller must still be answered
                return self.unsaved(error, pending, played)
            return self.written(None, pending, played)
        if self.storing is not None:
            self.storing.append(self)  # only the commit is left: never a hold now
            self.storing = None
        self.pending, self.played_turn = pending, played
        return handler.group_commit.write(write, self.committed)

    def committed(self, result) -> bytes | Failure:
        """The group commit's ``then``: the document once the group is
        committed (answered from memory when it could not be), for the
        turn's request and the requests that joined it."""
        handler, call_id = self.handler, self.call_id
        try:
            if isinstance(result, Failure):
                answer = self._not_written(result, self.pending, self.played_turn)
            else:
                answer = self.written(result, self.pending, self.played_turn)
        except BaseException:  # noqa: BLE001 - the requests' Deferreds carry it
            answer = Failure()
        handler._release(None, call_id, self)
        if self.joined is not None:
            joined, self.joined = self.joined, None
            for waiter in joined:
                fire(waiter, answer)
        return answer

    def join(self) -> defer.Deferred:
        """The answer for a retry of the turn, a poll or the call's status
        callback: a Deferred firing once the turn is committed (a turn
        waiting only for its commit never holds)."""
        waiter: defer.Deferred = defer.Deferred(self._leave)
        if self.joined is None:
            self.joined = []
        self.joined.append(waiter)
        return waiter

    poll = finished = join

    def _leave(self, waiter: defer.Deferred) -> None:
        if self.joined is not None and waiter in self.joined:
            self.joined.remove(waiter)

    def caller_gone(self) -> bool | defer.Deferred:
        """Whether the turn's caller hung up while on hold (see
        :meth:`ivr.server.calls.CallHandler._caller_gone`)."""
        return self.handler._caller_gone(self.call_id, self.turn)

    def hang_up(self) -> None:
        """The call ended: nothing to stop, its look-ups are done."""

    def written(self, _result, pending, played) -> bytes:
        """Committed: counted, logged, the helpdesk told; the document."""
        handler, call_id = self.handler, self.call_id
        new_state, body, _node_events = played
        handler._written(call_id, pending)
        handler._saved(call_id, self.turn, new_state)
        if new_state.get("callback") and not (self.state or {}).get("callback"):
            handler.helpdesk.requested(call_id)  # this turn kept the number, now committed
        if handler._unsaved:
            handler.save_unsaved()
        return body

    def _not_written(self, failure: Failure, pending, played) -> bytes:
        if not isinstance(failure.value, Exception):
            return failure  # type: ignore[return-value]
        return self.unsaved(failure.value, pending, played)

    def unsaved(self, error: Exception, pending, played) -> bytes:
        """The store could not write the turn: answered from memory."""
        return self.handler._answer_unsaved(
            self.call_id, self.turn, self.flow, self.state, self.event, self.url, error, pending,
            played, self.dialect)
