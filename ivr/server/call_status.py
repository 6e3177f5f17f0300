"""Status callbacks and call ends: the provider's call status, calls that end
without one (the sweep), and purging what is kept past its time."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.engine.step import step
from ivr.providers.dialect import StatusNotice
from ivr.store.sqlite.storage_health import fault_cause

#: A call silent this long (seconds) while the IVR waits for the caller
#: has gone without its status callback: the sweep ends it.
SWEEP_IDLE = 3600


#: The same while with an agent, in a queue or recording: Twilio ends a
#: <Dial> after its timeLimit of 4 hours.
SWEEP_ON_TRANSFER = 4 * 3600 + 600


#: Seconds an ended call's state is kept, so a provider retry of its last
#: turn still gets the same TwiML; the sweep then drops it (its node
#: events and ``calls`` row stay).
STATE_KEPT_AFTER_END = 600


async def _settled(d: defer.Deferred) -> None:
    """Wait for ``d`` whatever its outcome (its failure is the turn's, already answered)."""
    try:
        await d
    except defer.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - reported by the turn's own request
        pass


class _StatusCallbacks:
    """Methods of the call handler, :class:`ivr.server.calls.CallHandler`."""

    #: Runs long store work (the retention purge) in a thread and returns
    #: its Deferred; None runs it at once.  ``ivr-serve`` sets it on
    #: PostgreSQL, where a long delete must not stop the server.
    in_background = None

    def status(self, params: dict, now: datetime | None = None, served=None) -> bool:
        """Take a status callback and commit it; True when it was new.  A
        terminal status ends the call: one still waiting for the caller was
        abandoned.  ``now`` replaces the clock, as for :meth:`voice`;
        ``served`` is the provider whose route it came by."""
        if self.group_commit is not None:
            self.group_commit.flush()  # the call's last turn may be queued
        notice = (served or self.served).dialect.status_from(params)
        pending = self._unsaved.get(notice.call_id)
        with self._status_fault(notice):
            with self.store.transaction():
                new, ended = self._apply_status(notice, now)
        return self._status_written(notice, pending, new, ended)

    @contextmanager
    def _status_fault(self, notice: StatusNotice):
        """Count a storage fault while a status callback is written, and re-raise."""
        try:
            yield
        except Exception as error:
            self._count_status_fault(notice, error)
            raise

    def _count_status_fault(self, notice: StatusNotice, error: BaseException) -> None:
        if fault_cause(error) is not None:
            self.storage.failed(error, f"status of {notice.call_id}")

    def _status_not_written(self, failure, notice: StatusNotice):
        """A group commit of a status callback failed: counted, passed on."""
        self._count_status_fault(notice, failure.value)
        return failure

    def _status_committed(self, notice: StatusNotice, pending, result):
        """A status callback's group commit is done: its result (whether it
        was new), or its failure, counted."""
        if isinstance(result, Failure):
            return self._status_not_written(result, notice)
        return self._status_written(notice, pending, *result)

    def _status_written(self, notice: StatusNotice, pending, new: bool, ended) -> bool:
        """A status callback is committed: with it, the call's turns answered from memory."""
        self._written(notice.call_id, pending)
        return self._status_taken(new, ended)

    def _apply_status(self, notice: StatusNotice, now):
        """The writes of a status callback (database only): whether it was
        new, and the (call, turn, state) it ended, if any.  The call ends
        when the provider says it did (see :meth:`StatusNotice.ended_at`),
        so the last prompt counts in its time."""
        call_id, status = notice.call_id, notice.status
        pending = self._unsaved.get(call_id)
        if pending is not None:  # its turns answered from memory come first
            pending.write()
        if notice.final:
            self._hold_answers.pop(call_id, None)
        received = now or self._now("UTC")
        new = self.store.record_status(
            call_id, notice.sequence, status, received.isoformat(), notice.duration)
        if not new or not notice.final:
            return new, None
        record = self.store.load_call(call_id)
        if record is None:
            return new, None
        state = record.state
        ended_at = notice.ended_at(state, received)
        if record.ended:
            self._end_later(call_id, record, ended_at)
            return new, None
        flow = (self.registry.version(state["flow"], state["version"])
                or self.registry.current(state["flow"]))
        if flow is None:
            self.log.error("call {call} ended on unknown flow {flow}", call=call_id, flow=state["flow"])
            return new, None
        ended = (ended_at or received).astimezone(ZoneInfo(flow.timezone))
        new_state, _actions, node_events = step(flow, state, {"type": "hangup", "now": ended})
        self._writer(call_id, record.turn, new_state, record.response, node_events)()
        return new, (call_id, record.turn, new_state)

    def _end_later(self, call_id, record, ended_at):
        """A call we ended (a goodbye, a transfer) ended for the provider
        after its last prompt: move its end there, so that prompt counts."""
        state = record.state
        if ended_at is None or not state.get("ended_at"):
            return
        if ended_at <= datetime.fromisoformat(state["ended_at"]):
            return
        local = ended_at.astimezone(datetime.fromisoformat(state["ended_at"]).tzinfo)
        self._writer(call_id, record.turn, {**state, "ended_at": local.isoformat()},
                     record.response, [])()

    def _status_taken(self, new: bool, ended) -> bool:
        self.counters.status_callbacks += 1
        if ended is not None:
            self._saved(*ended)
        return new

    def sweep(self, idle: float = SWEEP_IDLE, on_transfer: float = SWEEP_ON_TRANSFER,
              state_kept: float = STATE_KEPT_AFTER_END) -> int | defer.Deferred:
        """End the calls the provider never closed (a lost status callback):
        those silent for ``idle`` seconds, or ``on_transfer`` seconds while
        with an agent or in a queue.  Each ends as a hang-up at its last
        turn, so it counts as abandoned unless a human already had it, and
        its time with the IVR is not stretched to the sweep.  Then drop the
        state of the calls ended more than ``state_kept`` seconds ago (see
        :meth:`ivr.store.sqlite.store.CallStore.drop_ended_states`).  Returns how many
        calls were ended (a Deferred of it on a store read off the reactor).
        A store that cannot write stops the sweep until its next run; it
        never raises (it runs from a timer)."""
        now = datetime.fromtimestamp(self.clock.seconds(), ZoneInfo("UTC"))
        silent_since = (now - timedelta(seconds=idle)).isoformat()
        ended_before = (now - timedelta(seconds=state_kept)).isoformat()
        if self.read_in_thread is not None and self.group_commit is not None:
            return defer.ensureDeferred(
                self._sweep_off_reactor(now, silent_since, on_transfer, ended_before))
        if self.group_commit is not None:
            self.group_commit.flush()
        try:
            ended = []
            for call_id in self.store.open_calls(silent_since):
                if call_id in self._unsaved:
                    continue  # answered from memory since: the store's state is behind
                record = self.store.load_call(call_id)
                ending = self._sweep_ending(call_id, record, now, on_transfer)
                if ending is not None:
                    with self.store.transaction():
                        ending[0]()
                    self._swept(call_id, record.turn, ending[1], ended)
            dropped = self.store.drop_ended_states(ended_before)
        except Exception as error:  # noqa: BLE001 - the next sweep tries again
            self.storage.failed(error, "sweep")
            return 0
        return self._sweep_done(ended, dropped)

    async def _sweep_off_reactor(self, now, silent_since, on_transfer, ended_before) -> int:
        """:meth:`sweep` on a store read and written off the reactor's
        thread (PostgreSQL), so a database that hangs stops only the sweep."""
        try:
            ended: list[str] = []
            for call_id in await self.read_in_thread(self.store.open_calls, silent_since):
                if call_id in self._unsaved:
                    continue
                record = await self.read_in_thread(self.store.load_call, call_id)
                ending = self._sweep_ending(call_id, record, now, on_transfer)
                if ending is not None:
                    await self.group_commit.write(ending[0])
                    self._swept(call_id, record.turn, ending[1], ended)
            dropped = await self.group_commit.write(
                lambda: self.store.drop_ended_states(ended_before))
        except Exception as error:  # noqa: BLE001 - the next sweep tries again
            self.storage.failed(error, "sweep")
            return 0
        return self._sweep_done(ended, dropped)

    def _sweep_ending(self, call_id, record, now, on_transfer):
        """The write that ends a silent call as a hang-up, and its new
        state; None while it must stay open."""
        state = record.state
        quiet_since = datetime.fromisoformat(state["now"])
        if state["waiting"] in ("dial", "record") and (now - quiet_since).total_seconds() < on_transfer:
            return None  # still with an agent, in a queue or leaving a message
        flow = (self.registry.version(state["flow"], state["version"])
                or self.registry.current(state["flow"]))
        if flow is None:
            return None
        event = {"type": "hangup", "now": quiet_since, "detail": "no status callback"}
        new_state, _actions, node_events = step(flow, state, event)
        return self._writer(call_id, record.turn, new_state, record.response, node_events), new_state

    def _swept(self, call_id: str, turn: int, new_state: dict, ended: list) -> None:
        self.storage.succeeded()
        self._saved(call_id, turn, new_state)
        ended.append(call_id)

    def _sweep_done(self, ended: list, dropped: int) -> int:
        if ended:
            self.log.info("sweep ended {count} calls with no status callback", count=len(ended))
        if dropped:
            self.log.info("sweep dropped the state of {count} ended calls", count=dropped)
        return len(ended)

    def purge(self, days: float) -> dict | defer.Deferred:
        """Erase the calls that started more than ``days`` days ago, with
        everything logged of them (``--retention-days``); the rows erased
        per table, or a Deferred of them when run :attr:`in_background`.
        Never raises nor fails (it runs from a timer)."""
        now = datetime.fromtimestamp(self.clock.seconds(), ZoneInfo("UTC"))
        cutoff = (now - timedelta(days=days)).isoformat()
        return self._timed_store_work(lambda: self.store.purge_before(cutoff),
                                      lambda erased: self._purged(erased, cutoff),
                                      self._not_purged)

    def fold_counts(self) -> None | defer.Deferred:
        """Fold the funnel's counts of a store that keeps them as rows to
        add up (PostgreSQL's ``fold_reached_counts``), in the background
        when the store's work runs there.  Never raises nor fails (it runs
        from a timer); a failure is tried again the next hour."""
        return self._timed_store_work(self.store.fold_reached_counts, lambda _: None,
                                      self._not_folded)

    def _timed_store_work(self, work, done, failed):
        """``done(work())`` for a timer: ``work`` :attr:`in_background` when
        set (a Deferred of the result), else now; ``done`` runs in the
        reactor's thread either way.  A failure of ``work`` goes to
        ``failed``, never raised."""
        if self.in_background is not None:
            return self.in_background(work).addCallbacks(done, failed)
        try:
            result = work()
        except Exception:  # noqa: BLE001 - the timer's next run tries again
            return failed(Failure())
        return done(result)

    def _not_folded(self, failure: Failure) -> None:
        self.storage.failed(failure.value, "folding the funnel's counts")

    def _purged(self, erased: dict, cutoff: str) -> dict:
        self.log.info("retention: erased the calls started before {cutoff}: {calls} calls, "
                      "{rows} rows", cutoff=cutoff, calls=erased.get("calls", 0),
                      rows=sum(erased.values()))
        return erased

    def _not_purged(self, failure: Failure) -> dict:
        self.storage.failed(failure.value, "retention purge")
        return {}
