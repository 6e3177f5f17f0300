"""Storage faults: when the call store cannot write, turns are answered from
memory (at most UNSAVED_KEPT calls) and written back once it can."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.server.registry import UnknownFlow
from ivr.store.protocol import CallRecord
from ivr.store.sqlite.storage_health import fault_cause

#: Most calls answered from memory while the store cannot write.
UNSAVED_KEPT = 10_000


#: Most of those written back by one pass once the store writes again.
UNSAVED_WRITTEN_PER_PASS = 200


@dataclass
class Unsaved:
    """A call answered from memory because the store could not write its
    turn: the record as answered, and the writes the store still owes."""

    record: CallRecord
    write: Callable[[], object]
    #: Queued in a group commit that runs off the reactor (PostgreSQL).
    queued: bool = False


def _both(first, then):
    """The writes of ``first`` then ``then``, as one write."""
    def write():
        first()
        return then()
    return write


class _StorageFaults:
    """Methods of the call handler, :class:`ivr.server.calls.CallHandler`."""

    # -- a store that cannot write -------------------------------------------------------
    def _last_record(self, call_id: str) -> CallRecord | None:
        """The call's last answered turn: from memory when the store could
        not write it, else from the store."""
        unsaved = self._unsaved.get(call_id)
        return unsaved.record if unsaved is not None else self.store.load_call(call_id)

    def _state_dropped(self, call_id: str) -> bool:
        """Whether the call ended and the sweep dropped its state: a very
        late request must not start it again (nor rewrite its log)."""
        row = self.store.call(call_id)
        return row is not None and row["ended_at"] is not None

    def _answer_unsaved(self, call_id, turn, flow, state, event, url, error, pending, played,
                        dialect=None):
        """The turn could not be written: answer it from memory.  A call
        that was going on hears the flow's apology and is put through to
        its human destination (the engine's fail-safe); one already
        answered from memory (on its way to that human) goes on as played.
        The answer and its writes are kept until the store writes again."""
        cause = self.storage.failed(error, f"turn {turn} of {call_id}")
        self.counters.unsaved_turns += 1
        new_state, body, node_events = played
        if pending is None and new_state["outcome"] != "failed":
            new_state, body, node_events = self._fail_safe(flow, state, event, url, dialect)
        write = self._writer(call_id, turn, new_state, body, node_events)
        if pending is not None:
            write = _both(pending.write, write)
        self._keep_unsaved(call_id, Unsaved(
            CallRecord(state=new_state, turn=turn, response=body,
                       ended=bool(new_state.get("ended"))), write))
        self.log.warn("turn {call} {turn} answered from memory ({cause}) at {node}",
                      call=call_id, turn=turn, cause=cause, node=new_state["node"])
        return body

    def _unreadable(self, flow_name, turn, params, now, error, served=None) -> bytes:
        """The store cannot even read the call: apologise and put the
        caller through to the current flow's human, keeping nothing (its
        state, if any, is the store's)."""
        served = served or self.served
        facts = served.dialect.call_facts(params)
        self.storage.failed(error, f"state of {facts.call_id}")
        flow = self.registry.current(flow_name)
        if flow is None:
            raise UnknownFlow(flow_name)
        event = {"type": "start", "call_id": facts.call_id, "caller": facts.caller,
                 "called": facts.called, "provider": served.name,
                 "now": now or self._now(flow.timezone)}
        _state, body, _events = self._fail_safe(
            flow, None, event, self.action_url(flow_name, turn + 1, served), served.dialect)
        return body

    def _keep_unsaved(self, call_id: str, unsaved: Unsaved) -> None:
        self._unsaved[call_id] = unsaved
        self._unsaved.move_to_end(call_id)
        if len(self._unsaved) > UNSAVED_KEPT:
            dropped, _ = self._unsaved.popitem(last=False)
            self.log.error("call {call} answered from memory is forgotten: more than {most} "
                           "calls wait for the store", call=dropped, most=UNSAVED_KEPT)

    def _written(self, call_id: str, unsaved: Unsaved | None) -> None:
        """A write committed: the store works, and ``unsaved`` (the call's
        turns answered from memory, written with it) is no longer owed."""
        self.storage.succeeded()
        if unsaved is not None and self._unsaved.get(call_id) is unsaved:
            del self._unsaved[call_id]
            if unsaved.record.state.get("callback"):
                self.helpdesk.requested(call_id)

    def save_unsaved(self, most: int = UNSAVED_WRITTEN_PER_PASS) -> int:
        """Write up to ``most`` of the calls answered from memory, oldest
        first, stopping at the first failure; how many were written.  On a
        store read off the reactor (PostgreSQL) they are queued in the group
        commit instead, never waited for here: how many were queued."""
        if self.read_in_thread is not None and self.group_commit is not None:
            return self._queue_unsaved(most)
        written = 0
        for call_id, unsaved in list(self._unsaved.items())[:most]:
            try:
                with self.store.transaction():
                    unsaved.write()
            except Exception as error:  # noqa: BLE001 - kept for the next pass
                self._unsaved_not_written(Failure(), call_id, unsaved)
                if fault_cause(error) is not None:
                    break
                continue
            self._written(call_id, unsaved)
            written += 1
        if written:
            self.log.info("{count} calls answered from memory are now written, {left} left",
                          count=written, left=len(self._unsaved))
        return written

    def _queue_unsaved(self, most: int) -> int:
        queued = 0
        for call_id, unsaved in list(self._unsaved.items())[:most]:
            if unsaved.queued:
                continue
            unsaved.queued = True
            queued += 1
            self.group_commit.write(unsaved.write).addCallbacks(
                lambda _result, call_id=call_id, unsaved=unsaved: self._written(call_id, unsaved),
                self._unsaved_not_written, errbackArgs=(call_id, unsaved))
        return queued

    def _unsaved_not_written(self, failure, call_id: str, unsaved: Unsaved) -> None:
        """Kept for the next pass when the store failed; dropped when its
        own writes are broken (trying again cannot help)."""
        unsaved.queued = False
        self.storage.failed(failure.value, f"turns of {call_id} answered from memory")
        if fault_cause(failure.value) is None and self._unsaved.get(call_id) is unsaved:
            del self._unsaved[call_id]

    @property
    def calls_in_memory(self) -> int:
        """Calls answered from memory whose turns the store still owes."""
        return len(self._unsaved)

    def probe_storage(self) -> bool | defer.Deferred:
        """While writes fail (or calls wait in memory), try a write: the
        health recovers without waiting for a call.  True when the store
        writes (a Deferred of it when the store is written off the reactor,
        on PostgreSQL: a database that hangs must not stop the server).
        Never raises nor fails (it runs from a timer)."""
        if self.storage.ok and not self._unsaved:
            return True
        if self.read_in_thread is not None and self.group_commit is not None:
            return self.group_commit.write(self.store.probe_write).addCallbacks(
                self._probed, self._probe_failed)
        try:
            self.store.probe_write()
        except Exception as error:  # noqa: BLE001 - still failing
            return self._probe_failed(Failure(error))
        return self._probed(None)

    def _probed(self, _result) -> bool:
        self.storage.succeeded()
        self.save_unsaved()
        return self.storage.ok

    def _probe_failed(self, failure: Failure) -> bool:
        self.storage.failed(failure.value, "probe")
        return False
