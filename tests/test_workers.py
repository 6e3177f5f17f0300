"""``ivr-serve --workers N``: the supervisor keeps N worker processes on one
listening socket (in memory, on a Clock), and real workers serve calls
whose turns land on either of them, through a ``kill -9`` of one."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_web import CA1, Server, body_of, says, slow_server, start_request
from twisted.internet import error, protocol, tcp
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure

from ivr.server import tap, workers
from ivr.server.calls import COME_BACK_MARGIN
from ivr.server.helpdesk import HelpdeskService
from ivr.server.holding import HOLD_PAUSE, PollsElsewhere
from ivr.server.leases import SWEEP_LEASE_INTERVALS
from ivr.server.workers import WorkerPool, restart_delay, worker_log_path
from ivr.store.sqlite.checkpoint import Checkpointer
from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.storage_health import fault_cause
from ivr.store.sqlite.store import CallStore

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).parent.parent


class _Transport:
    def __init__(self, pid):
        self.pid, self.signals = pid, []

    def signalProcess(self, name):
        self.signals.append(name)


class _Port:
    def __init__(self):
        self.socket = socket.socket()
        self.closed = False

    def fileno(self):
        return 77

    def stopListening(self):
        self.closed = True
        self.socket.close()


class _Spawner:
    """``reactor.spawnProcess`` recording each worker started."""

    def __init__(self):
        self.started: list[tuple] = []

    def __call__(self, process, executable, argv, env, childFDs):
        transport = _Transport(1000 + len(self.started))
        process.makeConnection(transport)
        self.started.append((process, argv, env, childFDs))
        return transport

    def end(self, number, why=None):
        process = self.started[number][0]
        process.processEnded(Failure(why or error.ProcessTerminated(signal=signal.SIGKILL)))


@pytest.fixture
def pool():
    clock, spawner, port = Clock(), _Spawner(), _Port()
    pool = WorkerPool("tcp:0:interface=127.0.0.1", 2, ["--db", "x.db"], clock,
                      spawn=spawner, listen=lambda description, reactor: port)
    pool.startService()
    yield pool, clock, spawner, port
    if pool.running:
        _stop(pool, spawner)


def _stop(pool, spawner):
    stopping = pool.stopService()
    for number, (process, *_rest) in enumerate(spawner.started):
        if not process.ended.called:
            spawner.end(number, error.ProcessDone(0))
    return stopping


def test_each_worker_inherits_the_socket_and_is_told_which_it_is(pool):
    _pool, _clock, spawner, _port = pool
    assert len(spawner.started) == 2
    for number, (_process, argv, env, child_fds) in enumerate(spawner.started, start=1):
        assert child_fds[77] == 77 and child_fds[0] == "w"
        assert (env[workers.FD_ENV], env[workers.INDEX_ENV]) == ("77", str(number))
        assert env[workers.FAMILY_ENV] == "AF_INET"
        assert argv[-4:] == ["--db", "x.db", "--workers", "1"]


def test_a_worker_that_dies_is_restarted_after_a_back_off(pool):
    _pool, clock, spawner, _port = pool
    spawner.end(0)
    assert len(spawner.started) == 2
    clock.advance(workers.FIRST_RESTART_DELAY)
    assert len(spawner.started) == 3
    assert spawner.started[2][2][workers.INDEX_ENV] == "1"


def test_a_worker_that_keeps_dying_is_restarted_less_and_less_often(pool):
    _pool, clock, spawner, _port = pool
    for _ in range(12):  # two minutes of a worker dying as soon as it starts
        latest = len(spawner.started) - 1
        if not spawner.started[latest][0].ended.called:
            spawner.end(latest)
        clock.advance(10)
    # 0.5, 1, 2, 4, 8 s apart, then 16 and 30: not one restart per death.
    assert 2 + 7 <= len(spawner.started) < 2 + 12


def test_a_worker_that_ran_a_while_is_restarted_at_once():
    assert restart_delay(workers.STABLE_AFTER, 5) == 0
    assert [restart_delay(1, n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_stopping_terminates_the_workers_then_closes_the_socket(pool):
    pool_, clock, spawner, port = pool
    stopping = pool_.stopService()
    assert [p.transport.signals for p, *_ in spawner.started] == [["TERM"], ["TERM"]]
    assert not stopping.called and not port.closed
    spawner.end(0, error.ProcessDone(0))
    spawner.end(1, error.ProcessDone(0))
    assert stopping.called and port.closed
    assert clock.getDelayedCalls() == []


def test_workers_that_ignore_sigterm_are_killed_after_the_grace(pool):
    pool_, clock, spawner, port = pool
    stopping = pool_.stopService()
    clock.advance(workers.STOP_GRACE)
    assert [p.transport.signals for p, *_ in spawner.started] == [["TERM", "KILL"]] * 2
    spawner.end(0)
    spawner.end(1)
    assert stopping.called and clock.getDelayedCalls() == []


def test_no_worker_is_restarted_once_stopping(pool):
    pool_, clock, spawner, _port = pool
    spawner.end(0)  # a restart is due in half a second...
    _stop(pool_, spawner)  # ...and cancelled
    clock.advance(60)
    assert len(spawner.started) == 2 and clock.getDelayedCalls() == []


def test_sighup_is_passed_on_to_every_running_worker(pool):
    pool_, _clock, spawner, _port = pool
    pool_.signal_workers("HUP")
    assert [p.transport.signals for p, *_ in spawner.started] == [["HUP"], ["HUP"]]


def test_each_worker_writes_its_own_log_files():
    assert worker_log_path("/var/log/ivr/ivr.log", 2) == "/var/log/ivr/ivr.worker2.log"
    assert worker_log_path("access", 1) == "access.worker1"


def _options(*arguments):
    options = tap.Options()
    options.parseOptions(list(arguments))
    return options


def test_workers_must_be_a_positive_whole_number():
    for value in ("0", "-1", "two"):
        with pytest.raises(usage.UsageError, match="--workers"):
            _options("--workers", value)
    assert _options("--workers", "3")["workers"] == 3


def test_workers_need_a_socket_they_can_share():
    with pytest.raises(usage.UsageError, match="tcp:, tcp6: or unix:"):
        _options("--workers", "2", "--listen", "ssl:8443:privateKey=key.pem")
    assert _options("--workers", "1", "--listen", "ssl:8443:privateKey=key.pem")["workers"] == 1


def test_twist_ivr_runs_one_process_unless_told():
    options = _options()
    assert options["workers"] is None
    assert options["arguments"] == []
    assert _options("--workers", "2", "--db", "x.db")["arguments"] == ["--workers", "2", "--db", "x.db"]


def test_a_worker_accepts_one_waiting_connection_at_a_time():
    """Three clients wait on the shared socket: a worker takes one each
    time the socket is readable (Twisted's own port would take all three
    at once), leaving the others to a worker that is waiting too."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(8)
    listening.setblocking(False)
    clients = [socket.create_connection(listening.getsockname(), timeout=10) for _ in range(3)]
    reactor = MemoryReactorClock()
    built = []

    def adopt(fd, family, factory):
        port = tcp.Port._fromListeningDescriptor(reactor, fd, family, factory)
        port.startListening()
        return port
    reactor.adoptStreamPort = adopt
    factory = protocol.Factory.forProtocol(protocol.Protocol)
    factory.buildProtocol = lambda address: built.append(address) or protocol.Protocol()
    adopted = workers.AdoptedPort(os.dup(listening.fileno()), socket.AF_INET, factory, reactor)
    listening.close()
    adopted.startService()
    try:
        accepted = []
        for _ in range(4):
            adopted.port.doRead()
            accepted.append(len(built))
        assert accepted == [1, 2, 3, 3]
    finally:
        for reader in list(reactor.readers):
            if reader is not adopted.port:
                reader.socket.close()
        adopted.stopService()
        reactor.advance(0)
        for client in clients:
            client.close()
    assert reactor.getDelayedCalls() == []


# -- a caller on hold whose poll reaches another worker ------------------------------------
def _poll(server):
    answer = start_request(server, "/voice/post_sale?turn=1&hold=1", CallSid=CA1)
    server.http.flush()
    return body_of(server, answer)


def _two_workers(tmp_path):
    """Two servers on one database file, as two workers: the first with
    look-ups that wait, the second told a caller may poll it for a turn
    the first holds."""
    first, pending = slow_server(tmp_path)
    second = Server(tmp_path, db_path=first.db_path)
    second.handler.polls_elsewhere = PollsElsewhere.bounded(4, 1.5, 5)
    return first, second, pending


def test_a_poll_that_reaches_another_worker_holds_until_the_turn_is_stored(tmp_path):
    first, second, pending = _two_workers(tmp_path)
    first.turn(0)
    start_request(first, "/voice/post_sale?turn=1", CallSid=CA1, Digits="1")
    first.clock.advance(1.5)  # on hold in the first worker
    waiting = _poll(second)
    assert b"<Pause" in waiting and b"turn=1&amp;hold=1" in waiting and says(waiting) == ""
    pending[0].callback({"status": "found", "data": {"orders": [], "count": 1}})
    # The first worker waits for its caller to come back, who polls the second.
    first.clock.advance(HOLD_PAUSE + 1.5 + COME_BACK_MARGIN)
    first.http.flush()
    answer = _poll(second)  # now in the store: the turn's own answer
    assert b"hold=1" not in answer and says(answer)
    assert answer == first.store.load_call(CA1).response
    assert first.clock.getDelayedCalls() == [] and second.clock.getDelayedCalls() == []


def test_a_poll_for_a_turn_no_worker_finishes_stops_waiting(tmp_path):
    first, second, _pending = _two_workers(tmp_path)
    first.turn(0)
    menu = first.store.load_call(CA1).response
    polls = [_poll(second) for _ in range(second.handler.polls_elsewhere.most + 1)]
    assert all(b"hold=1" in body for body in polls[:-1])
    assert polls[-1] == menu  # as after a restart: the last question again


def test_one_server_alone_never_waits_for_another(tmp_path):
    server = Server(tmp_path)
    server.turn(0)
    assert _poll(server) == server.store.load_call(CA1).response


# -- one SQLite file, several writing processes ---------------------------------------------
def _held_write_lock(path, held: threading.Event, release: threading.Event):
    """Another process's writer: takes the write lock, holds it until told."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(timeout=10)
        other.execute("COMMIT")
    finally:
        other.close()


def test_a_group_commit_waits_for_another_writer_instead_of_failing(tmp_path):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path)
    clock = Clock()
    group = GroupCommit(store, clock)
    held, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=_held_write_lock, args=(path, held, release))
    writer.start()
    assert held.wait(timeout=10)
    # The other writer lets go a moment later, well within the busy timeout.
    threading.Timer(0.2, release.set).start()
    done = group.write(lambda: store.take_lease("sweep", "worker-b", NOW, timedelta(seconds=5)))
    clock.advance(0)  # the commit blocks until the lock is free, then succeeds
    writer.join(timeout=10)
    assert done.result is True and release.is_set()
    assert clock.getDelayedCalls() == []
    store.close()


def test_a_writer_that_holds_the_lock_past_the_busy_timeout_fails_the_group_as_locked(tmp_path):
    path = tmp_path / "ivr.db"
    store = CallStore.open(path, busy_timeout_ms=50)
    clock = Clock()
    group = GroupCommit(store, clock)
    held, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=_held_write_lock, args=(path, held, release))
    writer.start()
    try:
        assert held.wait(timeout=10)
        done = group.write(lambda: store.take_lease("sweep", "worker-b", NOW, timedelta(seconds=5)))
        clock.advance(0)
        failures = []
        done.addErrback(failures.append)
        assert fault_cause(failures[0].value) == "database_locked"
    finally:
        release.set()
        writer.join(timeout=10)
    assert store.take_lease("sweep", "worker-b", NOW, timedelta(seconds=5)) is True
    store.close()


# -- work that must run once, in services built by makeService --------------------------------
def _worker_service(tmp_path):
    reactor = MemoryReactorClock()
    reactor.advance(NOW.timestamp())
    options = _options("--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                       "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1",
                       "--retention-days", "365")
    return tap.makeService(options, reactor), reactor


def _run(top, name):
    function, args, kwargs = top.getServiceNamed(name).call
    return function(*args, **kwargs)


def test_of_two_workers_on_one_database_one_sweeps_until_its_lease_runs_out(tmp_path):
    first, _ = _worker_service(tmp_path)
    second, second_clock = _worker_service(tmp_path)
    assert _run(first, "sweep") == 0  # ran: no call to end
    assert _run(second, "sweep") is None  # the first holds the lease
    assert _run(first, "retention")["calls"] == 0  # ran: erased nothing
    assert _run(second, "retention") is None
    interval = first.getServiceNamed("sweep").step
    second_clock.advance(SWEEP_LEASE_INTERVALS * interval)  # the first has stopped renewing
    assert _run(second, "sweep") == 0
    assert _run(first, "sweep") is None


def test_of_two_workers_on_one_database_one_checkpoints_and_one_sends_requests_again(tmp_path):
    first, _ = _worker_service(tmp_path)
    second, _ = _worker_service(tmp_path)
    checkpoints = [next(s for s in top if isinstance(s, Checkpointer)) for top in (first, second)]
    assert [checkpoint.may_run() for checkpoint in checkpoints] == [True, False]
    resends = [next(s for s in top if isinstance(s, HelpdeskService)) for top in (first, second)]
    assert [resend.may_resend() for resend in resends] == [True, False]
    for top in (first, second):
        _handler_of(top).store.close()


def test_a_server_restarted_at_once_sends_the_pending_requests_again(tmp_path):
    first, _ = _worker_service(tmp_path)
    second, _ = _worker_service(tmp_path)  # shares the file, never held the lease
    resend = next(s for s in first if isinstance(s, HelpdeskService))
    resend.startService()
    for top in (second, first):  # stopped: the holder gives the lease up, the other has none
        next(s for s in top if isinstance(s, HelpdeskService)).stopService()
    restarted, _ = _worker_service(tmp_path)  # at the same moment, within the lease's term
    assert next(s for s in restarted if isinstance(s, HelpdeskService)).may_resend() is True
    later, _ = _worker_service(tmp_path)
    assert next(s for s in later if isinstance(s, HelpdeskService)).may_resend() is False
    for top in (first, second, restarted, later):
        _handler_of(top).store.close()


def _handler_of(top):
    """The call handler of a service tree built by makeService."""
    return top.getServiceNamed("storage-probe").call[0].__self__


@pytest.mark.parametrize("worker, waits", [(None, False), (2, True)])
def test_only_a_worker_lets_a_poll_for_a_turn_it_does_not_hold_wait(tmp_path, worker, waits):
    options = _options("--db", str(tmp_path / "ivr.db"), "--flows", str(ROOT / "flows"),
                       "--prompts", str(ROOT / "prompts"), "--listen", "tcp:0:interface=127.0.0.1")
    options["worker"] = worker
    handler = _handler_of(tap.makeService(options, MemoryReactorClock()))
    try:
        assert (handler.polls_elsewhere.most > 0) is waits
    finally:
        handler.store.close()


# -- no sticky routing: each worker's copy of a call is checked against the file ----------------
def _save(store, turn, node):
    state = {"caller": "+33612345678", "node": node, "ended": False}
    store.save_turn(CA1, turn, state, f"<Response>{node}</Response>".encode(),
                    [{"call_id": CA1, "seq": turn, "flow": "f", "version": "v", "node": node,
                      "kind": "menu", "at": "2026-11-24T09:00:00+00:00"}],
                    {"flow": "f", "version": "v", "started_at": "2026-11-24T09:00:00+00:00"},
                    caller="+33612345678")


def test_turns_alternating_between_two_workers_never_read_a_stale_copy(tmp_path):
    first, second = CallStore.open(tmp_path / "ivr.db"), CallStore.open(tmp_path / "ivr.db")
    _save(first, 0, "menu")
    assert second.load_call(CA1).state["node"] == "menu"
    _save(second, 1, "track")
    # The first worker kept its own save of turn 0: the file says otherwise now.
    assert (first.load_call(CA1).turn, first.load_call(CA1).state["node"]) == (1, "track")
    _save(first, 2, "goodbye")
    assert (second.load_call(CA1).turn, second.load_call(CA1).state["node"]) == (2, "goodbye")
    # A late write of an older turn from a worker's stale copy changes nothing.
    _save(second, 1, "track")
    assert first.load_call(CA1).turn == 2
    assert [e["node"] for e in first.node_events(CA1)] == ["menu", "track", "goodbye"]
    first.close()
    second.close()


def test_ivr_serve_runs_one_worker_per_core_unless_told(monkeypatch):
    started = []
    monkeypatch.setattr(tap, "serve", lambda options, reactor: started.append(options["workers"]))
    monkeypatch.setattr(tap.os, "cpu_count", lambda: 4)
    tap.main(["--db", "x.db"])
    tap.main(["--db", "x.db", "--workers", "1"])
    tap.main(["--db", "x.db", "--listen", "ssl:8443:privateKey=key.pem"])  # cannot be shared
    assert started == [4, 1, 1]
