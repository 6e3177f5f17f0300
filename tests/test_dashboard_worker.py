"""The dashboard's queries run in a worker process of the lowest priority:
the same figures as in the server's process, one job at a time, a worker
that dies is replaced, and none outlives its server."""

import io
import os
import pickle
import struct
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from dashboard_support import insert_traffic
from twisted.internet import defer, error, task
from twisted.python.failure import Failure

from ivr.reports import analytics
from ivr.reports.graph import build_graph
from ivr.server.dashboard import Query, TodayByFlow, draw, gather_view
from ivr.server.dashboard_worker import BOOT, TIME_LIMIT, ProcessReader, TooSlow, WorkerGone, serve
from ivr.server.registry import FlowRegistry
from ivr.store.sqlite.store import CallStore

ROOT = Path(__file__).resolve().parent.parent
WEEK = Query(date(2026, 11, 18), date(2026, 11, 24))
LENGTH = struct.Struct(">I")


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> str:
    """A log file with the dashboard tests' week of known traffic."""
    path = tmp_path_factory.mktemp("worker") / "ivr.db"
    store = CallStore.open(path)
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts", store)
    registry.reload()
    insert_traffic(store.db, registry.current("post_sale"))
    store.db.conn.commit()
    store.db.close()
    return str(path)


def frame(body: bytes) -> bytes:
    return LENGTH.pack(len(body)) + body


def job(function, *args, reads=True) -> bytes:
    return frame(pickle.dumps((function, args, reads)))


def answers_of(stream: bytes) -> list:
    answers = []
    while stream:
        (length,) = LENGTH.unpack_from(stream)
        answers.append(pickle.loads(stream[LENGTH.size:LENGTH.size + length]))
        stream = stream[LENGTH.size + length:]
    return answers


def in_process(path: str, function, *args):
    db = analytics.open_report_db(path)
    try:
        return function(db, *args)
    finally:
        db.close()


def week_view_job():
    return (gather_view, WEEK, analytics.Costs(), TodayByFlow(0.0, {}), "fr")


def fails_to_read(db):
    raise analytics.ReportError("no such flow")


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot be pickled")


def fails_strangely(db):
    raise Unpicklable("strange")


# -- the worker's loop --------------------------------------------------------------

def test_the_worker_answers_each_job_in_turn_with_the_figures_of_the_server_s_own_process(log):
    answers = io.BytesIO()
    serve(log, io.BytesIO(job(*week_view_job()) + job(analytics.summary, analytics.Filters())),
          answers)
    (kind, view), (kind2, summary) = answers_of(answers.getvalue())
    assert kind == kind2 == "result"
    assert view == in_process(log, *week_view_job())
    assert view.lang == "fr" and view.total["calls"] == 73
    assert summary == in_process(log, analytics.summary, analytics.Filters())


def test_a_job_s_error_goes_back_to_the_server_and_the_worker_goes_on(log):
    answers = io.BytesIO()
    serve(log, io.BytesIO(job(fails_to_read) + job(fails_strangely) + job(analytics.summary,
                                                                           analytics.Filters())),
          answers)
    (kind, raised), (kind2, strange), (kind3, _rows) = answers_of(answers.getvalue())
    assert (kind, kind2, kind3) == ("error", "error", "result")
    assert isinstance(raised, analytics.ReportError) and str(raised) == "no such flow"
    assert isinstance(strange, RuntimeError) and "strange" in str(strange)


def test_the_worker_ends_when_its_server_stops_sending(log):
    answers = io.BytesIO()
    serve(log, io.BytesIO(job(fails_to_read)[:-3]), answers)  # cut short: the server died
    assert answers.getvalue() == b""


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_real_worker_runs_at_idle_priority_gives_the_same_figures_and_ends_with_its_input(log):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen([sys.executable, "-c", BOOT, log], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    try:
        worker.stdin.write(job(*week_view_job()))
        worker.stdin.flush()
        (length,) = LENGTH.unpack(worker.stdout.read(LENGTH.size))
        kind, view = pickle.loads(worker.stdout.read(length))
        assert os.sched_getscheduler(worker.pid) == os.SCHED_IDLE
        worker.stdin.close()
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert kind == "result" and view == in_process(log, *week_view_job())


# -- the server's side --------------------------------------------------------------

class FakeProcess:
    """The transport of a spawned worker: what was written, what signalled."""

    def __init__(self):
        self.written, self.signals = bytearray(), []

    def write(self, data):
        self.written += data

    def signalProcess(self, signal):  # noqa: N802 - Twisted's name
        if self.signals:
            raise error.ProcessExitedAlready()
        self.signals.append(signal)


class FakeReactor(task.Clock):
    """Spawns nothing: records the workers asked for and the shutdown triggers."""

    def __init__(self):
        super().__init__()
        self.spawned, self.triggers = [], {}

    def spawnProcess(self, worker, executable, args, env, childFDs):  # noqa: N802
        assert args[1:] == ["-c", BOOT, "ivr.db"] and childFDs[1] == "r"
        assert str(ROOT) in env["PYTHONPATH"].split(os.pathsep)
        worker.makeConnection(FakeProcess())
        self.spawned.append(worker)

    def addSystemEventTrigger(self, phase, event, function):  # noqa: N802
        self.triggers[len(self.triggers)] = (phase, event, function)
        return len(self.triggers) - 1

    def removeSystemEventTrigger(self, trigger):  # noqa: N802
        del self.triggers[trigger]

    def shut_down(self):
        for phase, event, function in list(self.triggers.values()):
            assert (phase, event) == ("before", "shutdown")
            function()


@pytest.fixture
def reactor():
    """A fake reactor; no time limit left running at the end."""
    fake = FakeReactor()
    yield fake
    assert fake.getDelayedCalls() == []


def answer(worker, kind, value, chunk=7):
    body = frame(pickle.dumps((kind, value)))
    for at in range(0, len(body), chunk):  # as a pipe may cut it
        worker.childDataReceived(1, body[at:at + chunk])


def end(worker):
    worker.processEnded(Failure(error.ProcessTerminated(signal=9)))


def outcome(d):
    """What ``d`` fired with (it fires with None after: call once)."""
    results = []
    d.addBoth(results.append)
    return results[0] if results else None


def test_jobs_go_to_one_worker_one_at_a_time_and_answers_come_back(reactor):
    reader = ProcessReader("ivr.db", reactor)
    first, second = reader(analytics.summary, analytics.Filters()), reader(fails_to_read)
    (worker,) = reactor.spawned
    assert answers_of(bytes(worker.transport.written)) == [
        (analytics.summary, (analytics.Filters(),), True)]
    answer(worker, "result", [{"calls": 3}])
    assert outcome(first) == [{"calls": 3}]
    # Only now the second job, to the same worker.
    assert len(answers_of(bytes(worker.transport.written))) == 2
    answer(worker, "error", analytics.ReportError("no such flow"))
    assert outcome(second).check(analytics.ReportError)
    assert reactor.spawned == [worker]


def test_a_worker_that_dies_fails_its_job_and_the_next_view_starts_another(reactor):
    reader = ProcessReader("ivr.db", reactor)
    lost = reader(analytics.summary, analytics.Filters())
    end(reactor.spawned[0])
    assert outcome(lost).check(WorkerGone)
    again = reader(analytics.summary, analytics.Filters())
    assert len(reactor.spawned) == 2
    answer(reactor.spawned[1], "result", [])
    assert outcome(again) == []


def test_a_view_abandoned_by_its_browser_kills_the_worker(reactor):
    reader = ProcessReader("ivr.db", reactor)
    abandoned = reader(analytics.summary, analytics.Filters())
    abandoned.cancel()
    (worker,) = reactor.spawned
    assert outcome(abandoned).check(defer.CancelledError)
    assert worker.transport.signals == ["KILL"]
    end(worker)  # nothing more to fail
    answer(worker, "result", [])  # nor to answer
    reader(analytics.summary, analytics.Filters())
    assert len(reactor.spawned) == 2
    answer(reactor.spawned[1], "result", [])


def test_the_server_s_shutdown_kills_the_worker_and_waits_for_its_end(reactor):
    reader = ProcessReader("ivr.db", reactor)
    assert reactor.triggers == {}  # no worker, nothing to stop
    pending = reader(analytics.summary, analytics.Filters())
    (worker,) = reactor.spawned
    reactor.shut_down()
    assert worker.transport.signals == ["KILL"]
    end(worker)
    assert outcome(pending).check(WorkerGone)
    assert outcome(worker.ended) is None  # fired
    assert reader.worker is None


def test_stopping_the_reader_removes_its_shutdown_trigger(reactor):
    reader = ProcessReader("ivr.db", reactor)
    reader(analytics.summary, analytics.Filters())
    assert len(reactor.triggers) == 1
    stopped = reader.stop()
    end(reactor.spawned[0])
    assert outcome(stopped) is None and reactor.triggers == {}


def test_a_job_that_cannot_be_sent_fails_its_view_only(reactor):
    reader = ProcessReader("ivr.db", reactor)
    assert outcome(reader(lambda db: 1)).check(pickle.PicklingError, AttributeError)
    ok = reader(analytics.summary, analytics.Filters())
    answer(reactor.spawned[0], "result", [])
    assert outcome(ok) == []


def test_a_job_past_its_time_limit_kills_the_worker_and_fails_its_view(reactor):
    reader = ProcessReader("ivr.db", reactor)
    got = []
    reader(analytics.summary, analytics.Filters()).addBoth(got.append)
    reactor.advance(TIME_LIMIT - 1)
    assert got == []
    reactor.advance(1)
    assert got[0].check(TooSlow)
    (worker,) = reactor.spawned
    assert worker.transport.signals == ["KILL"]
    end(worker)


def test_an_answer_in_time_cancels_the_time_limit(reactor):
    reader = ProcessReader("ivr.db", reactor)
    quick = reader.call(draw, "a view", None)
    (worker,) = reactor.spawned
    assert answers_of(bytes(worker.transport.written)) == [(draw, ("a view", None), False)]
    answer(worker, "result", "<html>")
    assert outcome(quick) == "<html>"


def test_the_worker_draws_the_page_as_the_server_s_own_process_does(log):
    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts")
    registry.reload()
    view = in_process(log, *week_view_job())
    flow_graph = build_graph(registry.version(view.flow, view.version))
    answers = io.BytesIO()
    serve(log, io.BytesIO(job(draw, view, flow_graph, reads=False)), answers)
    ((kind, page),) = answers_of(answers.getvalue())
    assert kind == "result" and page == draw(in_process(log, *week_view_job()), flow_graph)
    assert "<svg" in page


class SlowReader:
    """A reader whose every job ran past its time limit."""

    def __call__(self, function, *args):
        return defer.fail(TooSlow("the figures took longer than 60 s"))

    call = __call__


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/calls", "/dashboard/calls/CA1"])
def test_a_view_past_its_time_limit_says_the_machine_is_too_busy(path):
    from treq.testing import StubTreq

    from ivr.server.dashboard import DashboardResource
    from ivr.server.web import build_root

    registry = FlowRegistry(ROOT / "flows", ROOT / "prompts")
    registry.reload()
    clock = task.Clock()
    http = StubTreq(build_root(None, registry, dashboard=DashboardResource(
        "t" * 32, SlowReader(), clock, registry=registry)))
    got = []
    http.request("GET", "http://ivr.test" + path, headers={"Authorization": "Bearer " + "t" * 32}
                 ).addCallback(lambda response: response.text("utf-8").addCallback(
                     lambda text: (response.code, response.headers.getRawHeaders("retry-after"),
                                   text))).addBoth(got.append)
    http.flush()
    assert got == [(503, ["60"], "the server's machine is too busy to compute the figures now; "
                                 "try again in a minute\n")]
    assert clock.getDelayedCalls() == []
