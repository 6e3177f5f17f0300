"""The server's log observer writes what Twisted's text observer writes."""

import io
import threading

import pytest
from twisted.internet import task
from twisted.logger import Logger, LogLevel, textFileLogObserver
from twisted.python.failure import Failure

from ivr.server.logs import TurnLogger, flush_log_lines, text_log_observer

SUMMER = 1782900000.25  # 2026-07-01, a daylight-saving time offset in most zones
WINTER = 1795000000.75


class Thing:
    def name(self):
        return "called"


class _Recorder:
    """Collects the events a Logger emits, to give both observers the same ones."""

    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)


def _lines(observer_factory, emit):
    recorder = _Recorder()
    emit(Logger(namespace="ivr.calls.CallHandler", observer=recorder))
    out = io.StringIO()
    observer = observer_factory(out)
    for event in recorder.events:
        observer(event)
    return out.getvalue()


def _at(moment, log):
    """``log`` with its events stamped at ``moment``, or not stamped for
    None (a Logger stamps the clock's time)."""
    def observer(event):
        if moment is None:
            del event["log_time"]
        else:
            event["log_time"] = moment
        log.observer(event)
    return Logger(namespace=log.namespace, observer=observer)


@pytest.mark.parametrize("emit", [
    lambda log: _at(SUMMER, log).info("turn {call} {turn} at {node} outcome {outcome}",
                                      call="CA1", turn=3, node="main_menu", outcome="ongoing"),
    lambda log: _at(WINTER, log).warn("POST {path} refused: {code} {reason!r}",
                                      path="/voice/x", code=403, reason="bad\nsignature"),
    lambda log: _at(WINTER, log).info("{count:>5} calls", count=42),
    lambda log: _at(SUMMER, log).info("no fields at all", log_system="custom"),
    lambda log: _at(SUMMER, log).info("a call field {thing.name()}", thing=Thing()),
    lambda log: _at(SUMMER, log).info("a missing {field}"),
    lambda log: _at(SUMMER, log).info(""),
    lambda log: _at(None, log).info("no time stamp"),
    lambda log: _at(SUMMER, log).emit(LogLevel.error, "{a} then {b}", a=1, b=None),
    lambda log: _at(SUMMER, log).info("plain {field} over lines", field="one\ntwo"),
    lambda log: _at(SUMMER, log).info("a system not text", log_system=42),
    lambda log: _at(SUMMER, log).info(None, field="no format"),
    lambda log: _at(SUMMER, log).info("the legacy text wins", log_text="legacy"),
    lambda log: _at(SUMMER, log).info("numbered {0}"),
], ids=["turn", "newline-and-repr", "format-spec", "system", "call-field", "missing-field",
        "empty", "no-time", "error-level", "newline-in-field", "system-not-text", "no-format",
        "legacy-text", "numbered-field"])
def test_lines_are_the_ones_twisted_writes(emit):
    assert _lines(text_log_observer, emit) == _lines(textFileLogObserver, emit)


def test_a_failure_keeps_its_traceback():
    def emit(log):
        try:
            1 / 0
        except ZeroDivisionError:
            _at(SUMMER, log).failure("turn {call} failed", Failure(), call="CA1")

    text = _lines(text_log_observer, emit)
    assert "turn CA1 failed" in text and "ZeroDivisionError" in text
    assert text == _lines(textFileLogObserver, emit)


def test_the_time_stamp_follows_the_clock_across_seconds():
    def emit(log):
        for moment in (SUMMER, SUMMER + 0.5, SUMMER + 1, WINTER):
            _at(moment, log).info("tick")

    lines = _lines(text_log_observer, emit).splitlines()
    assert lines == _lines(textFileLogObserver, emit).splitlines()
    assert lines[0] == lines[1] and lines[1] != lines[2]


def test_a_workers_lines_name_it_before_their_system():
    def emit(log):
        log.info("turn {call} {turn}", call="CA1", turn=2)
        log.failure("it broke", Failure(ValueError("boom")))

    plain = _lines(text_log_observer, emit).splitlines()
    tagged = _lines(lambda out: text_log_observer(out, "worker-2"), emit).splitlines()
    assert tagged[0] == plain[0].replace(" [", " [worker-2/", 1)
    assert tagged[1] == plain[1].replace(" [", " [worker-2/", 1)


class _Writes(io.StringIO):
    """A text file that remembers each write."""

    def __init__(self):
        super().__init__()
        self.writes = []

    def write(self, text):
        self.writes.append(text)
        return super().write(text)


def _turns(log, count, start=0):
    for turn in range(start, start + count):
        _at(SUMMER, log).info("turn {call} {turn}", call="CA1", turn=turn)


def _batched():
    clock, out = task.Clock(), _Writes()
    return clock, out, Logger(namespace="ivr.calls.CallHandler",
                              observer=text_log_observer(out, reactor=clock))


def test_the_lines_of_one_pass_of_the_reactor_are_written_in_one_write_at_the_next():
    clock, out, log = _batched()
    _turns(log, 3)
    assert out.writes == []
    clock.advance(0)
    assert len(out.writes) == 1
    assert out.getvalue() == _lines(textFileLogObserver, lambda log: _turns(log, 3))
    _turns(log, 1, start=3)
    clock.advance(0)
    assert len(out.writes) == 2 and out.getvalue().count("\n") == 4
    assert clock.getDelayedCalls() == []


def test_flush_log_lines_writes_them_at_once_and_the_next_pass_writes_nothing():
    clock, out, log = _batched()
    _turns(log, 2)
    flush_log_lines()  # what the group commit does once it has answered
    assert len(out.writes) == 1 and out.getvalue().count("\n") == 2
    assert clock.getDelayedCalls() == []


def test_flush_log_lines_writes_every_observer_waiting_and_only_those():
    (clock, out, log), (other_clock, other_out, other_log) = _batched(), _batched()
    _turns(log, 2)
    _turns(other_log, 1)
    clock.advance(0)  # the first one's own pass: it no longer waits
    assert len(out.writes) == 1 and other_out.writes == []
    flush_log_lines()
    assert len(out.writes) == 1 and len(other_out.writes) == 1
    _turns(log, 1, start=2)
    flush_log_lines()
    assert len(out.writes) == 2 and out.getvalue().count("\n") == 3
    assert clock.getDelayedCalls() == [] and other_clock.getDelayedCalls() == []


def test_a_line_from_another_thread_is_written_at_once_after_those_waiting():
    clock, out, log = _batched()
    _turns(log, 1)
    thread = threading.Thread(target=_turns, args=(log, 1, 1))
    thread.start()
    thread.join()
    assert [line.split()[-1] for line in out.getvalue().splitlines()] == ["0", "1"]
    clock.advance(0)
    assert len(out.writes) == 1 and clock.getDelayedCalls() == []


def test_batched_lines_go_to_a_binary_file_as_utf_8():
    clock, out = task.Clock(), io.BytesIO()
    log = Logger(namespace="ivr.calls.CallHandler", observer=text_log_observer(out, reactor=clock))
    _at(SUMMER, log).info("appel {call} terminé", call="CA1")
    clock.advance(0)
    assert out.getvalue().decode("utf-8").endswith("appel CA1 terminé\n")


def test_a_long_batch_is_written_in_whole_lines_a_pipe_takes_in_one_piece(monkeypatch):
    monkeypatch.setattr("ivr.server.logs.ATOMIC_WRITE", 200)
    clock, out, log = _batched()
    _turns(log, 10)
    clock.advance(0)
    assert len(out.writes) > 1
    assert all(len(text.encode()) <= 200 and text.endswith("\n") for text in out.writes)
    assert out.getvalue() == _lines(textFileLogObserver, lambda log: _turns(log, 10))


class _Quick:
    log = TurnLogger(observer=_Recorder())


class _Plain:
    log = Logger(observer=_Recorder())


class _QuickChild(_Quick):
    pass


def _emitted(owner, **fields):
    handler = owner()
    handler.log.info("turn {call} {turn} at {node} outcome {outcome}", **fields)
    event = type(handler).log.observer.events.pop()
    return handler, event


def test_a_turn_logger_emits_the_event_twisteds_logger_does():
    fields = {"call": "CA1", "turn": 3, "node": "main_menu", "outcome": "ongoing"}
    quick, event = _emitted(_Quick, **fields)
    plain, expected = _emitted(_Plain, **fields)
    assert event["log_logger"].namespace == f"{__name__}._Quick"
    assert event["log_source"] is quick and expected["log_source"] is plain
    assert isinstance(event.pop("log_time"), float)
    expected.pop("log_time")
    for key in ("log_logger", "log_source", "log_namespace"):
        event.pop(key), expected.pop(key)
    assert event == expected  # the level, the format, the fields


def test_a_turn_logger_names_the_class_it_is_read_from():
    _child, event = _emitted(_QuickChild, call="CA2", turn=1, node="n", outcome="ended")
    assert event["log_namespace"] == f"{__name__}._QuickChild"
    assert _Quick.log.source is _Quick and _Quick().log.namespace == f"{__name__}._Quick"


def test_a_turn_logger_keeps_the_trace_and_the_other_levels():
    trace: list = []
    handler = _Quick()
    handler.log.info("traced", log_trace=trace)
    handler.log.warn("warned {n}", n=1)
    events = _Quick.log.observer.events
    assert trace and trace[0][1] is _Quick.log.observer
    assert [e["log_level"] for e in events[-2:]] == [LogLevel.info, LogLevel.warn]
    events.clear()
