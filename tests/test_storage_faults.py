"""A store that cannot write (disk full, I/O error, locked): callers are
still answered, from memory, and put through to a human; the failure is
logged, counted and reported by /healthz until writes succeed again."""

import hashlib
import json
import sqlite3
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from test_web import BASE, FORM, Server, says
from twisted.internet import defer, task
from twisted.logger import Logger, LogLevel

from ivr.store.sqlite.group_commit import GroupCommit
from ivr.store.sqlite.storage_health import StorageHealth, fault_cause


def call_sid(name: str) -> str:
    """A call id shaped as Twilio's (``CA`` and 32 hex digits), one per ``name``."""
    return "CA" + hashlib.md5(name.encode()).hexdigest()


APOLOGY_FR = "Désolé, nous rencontrons un problème technique. Je vous passe un conseiller."


class FailingConnection:
    """A SQLite connection whose COMMITs fail with ``error`` while
    ``failing`` is set, as they do on a full disk: the statements before
    it succeed, the commit does not, and the transaction must be rolled back."""

    def __init__(self, conn):
        self._conn = conn
        self.failing = None
        self.commits_refused = 0

    def execute(self, sql, *args):
        if self.failing is not None and sql.strip().upper().startswith("COMMIT"):
            self.commits_refused += 1
            raise self.failing
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def failing_server(tmp_path, group_commit=False):
    server = Server(tmp_path, group_commit=group_commit)
    server.conn = FailingConnection(server.store.db.conn)
    server.store.db.conn = server.conn
    server.events = []
    server.handler.storage.log = Logger(observer=server.events.append)
    return server


def disk_full():
    return sqlite3.OperationalError("database or disk is full")


def voice(server, turn, sid=call_sid("CA1"), **params):
    """A turn through HTTP, committed (the next reactor iteration runs)."""
    path = "/voice/post_sale" + (f"?turn={turn}" if turn else "")
    answers = []
    server.http.request("POST", BASE + path, headers=FORM, data=urlencode(
        {"CallSid": sid, "From": "+33612345678", "To": "+33100000000", **params}).encode()
    ).addCallback(answers.append)
    server.http.flush()
    server.clock.advance(0)
    server.http.flush()
    assert answers, "the turn was not answered"
    content = server.successful(answers[0].content())
    return answers[0].code, content


def health(server):
    code, _headers, body = server.request("GET", "/healthz")
    return code, json.loads(body)


def metrics(server) -> str:
    return server.request("GET", "/metrics")[2].decode()


@pytest.fixture(params=[False, True], ids=["commit-per-turn", "group-commit"])
def server(tmp_path, request):
    return failing_server(tmp_path, group_commit=request.param)


def test_a_turn_the_store_cannot_write_hears_the_apology_and_reaches_the_flows_human(server):
    assert voice(server, 0)[0] == 200
    server.conn.failing = disk_full()
    code, body = voice(server, 1, Digits="1")
    assert code == 200
    assert says(body) == APOLOGY_FR
    assert ET.fromstring(body).find("Enqueue").text == "post-sale"
    assert not server.store.db.conn.in_transaction  # rolled back, ready for the next write


def test_healthz_is_503_with_the_cause_while_writes_fail_and_metrics_count_them(server):
    voice(server, 0)
    assert health(server)[0] == 200
    server.conn.failing = disk_full()
    voice(server, 1, Digits="1")
    voice(server, 0, sid=call_sid("CA2"))
    code, body = health(server)
    assert (code, body["status"], body["storage"]) == (503, "storage_failing", "disk_full")
    text = metrics(server)
    assert 'ivr_storage_failures_total{cause="disk_full"} 2\n' in text
    assert "ivr_storage_ok 0\n" in text and "ivr_turns_unsaved_total 2\n" in text
    assert "ivr_calls_in_memory 2\n" in text


def test_the_failure_is_logged_as_a_structured_event_with_its_cause(server):
    voice(server, 0)
    server.conn.failing = disk_full()
    voice(server, 1, Digits="1")
    failed = [e for e in server.events if e.get("cause") == "disk_full"]
    assert failed and failed[0]["log_level"] == LogLevel.critical
    assert failed[0]["what"] == f"turn 1 of {call_sid('CA1')}"


def test_a_retry_of_a_turn_answered_from_memory_gets_the_same_bytes(server):
    voice(server, 0)
    server.conn.failing = disk_full()
    first = voice(server, 1, Digits="1")
    assert voice(server, 1, Digits="1") == first
    server.conn.failing = None
    assert voice(server, 1, Digits="1") == first  # written since, the same answer


def test_turns_committed_before_the_fault_are_kept(server):
    voice(server, 0)
    voice(server, 1, Digits="1")
    before = server.store.node_events(call_sid("CA1"))
    server.conn.failing = disk_full()
    voice(server, 2, Digits="1")
    voice(server, 0, sid=call_sid("CA2"))
    assert server.store.node_events(call_sid("CA1")) == before
    assert server.store.load_call(call_sid("CA1")).turn == 1
    assert server.store.load_call(call_sid("CA2")) is None


def test_health_recovers_by_itself_once_a_probe_writes_and_the_memory_is_written(server):
    voice(server, 0)
    server.conn.failing = disk_full()
    voice(server, 1, Digits="1")
    assert server.handler.probe_storage() is False
    assert health(server)[0] == 503
    server.conn.failing = None
    assert server.handler.probe_storage() is True
    assert health(server)[0] == 200
    assert "ivr_calls_in_memory 0\n" in metrics(server)
    call = server.store.call(call_sid("CA1"))
    assert (call["outcome"], call["cause"]) == ("failed", "error")
    assert server.store.load_call(call_sid("CA1")).turn == 1
    assert [e["branch"] for e in server.store.node_events(call_sid("CA1"))][-1] == "failsafe"


def test_health_recovers_with_the_next_turn_written(server):
    voice(server, 0, sid=call_sid("CA2"))
    server.conn.failing = disk_full()
    voice(server, 0)
    server.conn.failing = None
    assert voice(server, 1, sid=call_sid("CA2"), Digits="1")[0] == 200
    assert health(server)[0] == 200
    assert server.store.call(call_sid("CA1"))["outcome"] == "failed"  # written with it


def test_a_call_answered_from_memory_goes_on_from_there_and_is_written_later(server):
    voice(server, 0)
    server.conn.failing = disk_full()
    voice(server, 1, Digits="1")  # apology, put in the agents' queue
    code, body = voice(server, 2, QueueResult="bridged")
    assert code == 200 and "Gather" not in body.decode()  # not back to the menu
    server.conn.failing = None
    server.handler.probe_storage()
    record = server.store.load_call(call_sid("CA1"))
    assert record.turn == 2 and record.ended
    assert server.store.call(call_sid("CA1"))["outcome"] == "failed"


def status(server, sid=call_sid("CA1"), **params):
    """A status callback through HTTP, committed: (code, body)."""
    answers = []
    server.http.request("POST", BASE + "/status", headers=FORM, data=urlencode(
        {"CallSid": sid, **params}).encode()).addCallback(answers.append)
    server.http.flush()
    server.clock.advance(0)
    server.http.flush()
    assert answers, "the status callback was not answered"
    return answers[0].code, server.successful(answers[0].content())


def test_a_status_callback_that_cannot_be_stored_is_503_then_taken(server):
    voice(server, 0)
    server.conn.failing = disk_full()
    voice(server, 1, Digits="1")
    assert status(server, CallStatus="completed", SequenceNumber="3") == \
        (503, b"cannot store the status now\n")
    server.conn.failing = None
    assert status(server, CallStatus="completed", SequenceNumber="3")[0] == 204
    call = server.store.call(call_sid("CA1"))
    assert (call["outcome"], call["provider_status"]) == ("failed", "completed")
    assert server.handler.calls_in_memory == 0


@pytest.mark.parametrize("message, cause", [
    ("disk I/O error", "io_error"),
    ("database is locked", "database_locked"),
])
def test_io_errors_and_a_lock_held_too_long_are_answered_the_same_way(tmp_path, message, cause):
    server = failing_server(tmp_path)
    voice(server, 0)
    server.conn.failing = sqlite3.OperationalError(message)
    code, body = voice(server, 1, Digits="1")
    assert code == 200 and says(body) == APOLOGY_FR
    assert health(server)[1]["storage"] == cause


def test_a_store_that_cannot_even_read_still_answers_with_the_apology(tmp_path, monkeypatch):
    server = failing_server(tmp_path)

    def unreadable(call_id):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(server.store, "load_call", unreadable)
    code, body = voice(server, 0)
    assert code == 200 and says(body) == APOLOGY_FR
    assert ET.fromstring(body).find("Enqueue").text == "post-sale"
    assert health(server)[1]["storage"] == "io_error"


def test_the_sweep_on_a_failing_store_notes_it_and_does_not_raise(tmp_path):
    server = failing_server(tmp_path)
    voice(server, 0)
    server.clock.advance(4000)
    server.conn.failing = disk_full()
    assert server.handler.sweep() == 0
    assert health(server)[1]["storage"] == "disk_full"
    server.conn.failing = None
    assert server.handler.sweep() == 1


def test_a_storage_fault_fails_the_whole_group_at_once_and_leaves_no_transaction(tmp_path):
    server = failing_server(tmp_path)
    clock = task.Clock()
    group = GroupCommit(server.store, clock)
    server.conn.failing = disk_full()
    done = [group.write(lambda: server.store.probe_write()) for _ in range(3)]
    errors = []
    for d in done:
        d.addErrback(errors.append)
    clock.advance(0)
    assert len(errors) == 3 and server.conn.commits_refused == 1  # not once per write
    assert not server.store.db.conn.in_transaction
    server.conn.failing = None
    assert group.write(lambda: server.store.probe_write()) is not None
    clock.advance(0)
    assert group.commits == 1
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("error, cause", [
    (sqlite3.OperationalError("database or disk is full"), "disk_full"),
    (sqlite3.OperationalError("disk I/O error"), "io_error"),
    (sqlite3.OperationalError("database is locked"), "database_locked"),
    (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
    (OSError(28, "No space left on device"), "disk_full"),
    (sqlite3.IntegrityError("NOT NULL constraint failed"), None),
    (ValueError("a bug"), None),
])
def test_fault_cause_names_the_storage_faults_only(error, cause):
    assert fault_cause(error) == cause


def test_health_logs_the_first_failure_as_critical_and_the_recovery():
    events = []
    health = StorageHealth()
    health.log = Logger(observer=events.append)
    health.succeeded()
    assert events == [] and health.ok
    health.failed(disk_full(), "turn 1 of CA1")
    health.failed(disk_full(), "turn 2 of CA1")
    health.succeeded()
    assert [e["log_level"] for e in events] == [LogLevel.critical, LogLevel.error, LogLevel.info]
    assert health.ok and health.failures == {"disk_full": 2}


def test_a_real_lock_held_past_the_busy_timeout_is_answered_then_recovered(tmp_path):
    server = Server(tmp_path, group_commit=True)
    server.store.db.execute("PRAGMA busy_timeout = 20")  # the bound, short for the test
    voice(server, 0)
    other = sqlite3.connect(server.db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        code, body = voice(server, 1, Digits="1")
        assert code == 200 and says(body) == APOLOGY_FR
        assert health(server)[1]["storage"] == "database_locked"
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert server.handler.probe_storage() is True
    assert health(server)[0] == 200
    assert server.store.call(call_sid("CA1"))["outcome"] == "failed"


def test_an_error_that_is_not_the_storages_leaves_the_health_alone():
    health = StorageHealth()
    health.log = Logger(observer=lambda event: None)
    assert health.failed(sqlite3.IntegrityError("NOT NULL constraint failed")) == "write_error"
    assert health.ok and health.failures == {"write_error": 1}


def test_a_status_callback_refused_for_its_content_leaves_the_health_alone(tmp_path):
    server = failing_server(tmp_path)
    voice(server, 0)
    with pytest.raises(ValueError):
        server.handler.status({"CallSid": call_sid("CA1"), "CallStatus": ""})
    assert server.handler.storage.ok and server.handler.storage.failures == {}


def test_the_apology_is_in_the_callers_language_and_the_flows_voice(tmp_path):
    server = failing_server(tmp_path)
    voice(server, 0, From="+447911123456")  # a British number hears English
    server.conn.failing = disk_full()
    code, body = voice(server, 1, From="+447911123456", Digits="1")
    say = ET.fromstring(body).find("Say")
    assert code == 200
    assert say.text == "Sorry, we're having a technical problem. Let me put you through to an agent."
    assert say.get("language") == "en-US" and say.get("voice")


def test_a_call_whose_own_writes_are_broken_does_not_hold_back_the_others(tmp_path):
    server = failing_server(tmp_path)
    server.conn.failing = disk_full()
    voice(server, 0, sid=call_sid("BROKEN"))
    voice(server, 0, sid=call_sid("FINE"))
    server.conn.failing = None

    def broken():
        raise sqlite3.IntegrityError("a bug in this call's writes")

    server.handler._unsaved[call_sid("BROKEN")].write = broken
    assert server.handler.save_unsaved() == 1
    assert server.handler.calls_in_memory == 0
    assert server.store.call(call_sid("FINE"))["outcome"] == "failed"
    assert server.handler.storage.failures["write_error"] == 1 and server.handler.storage.ok


def test_the_agent_whisper_on_a_store_that_cannot_read_puts_the_agent_through(tmp_path,
                                                                               monkeypatch):
    server = failing_server(tmp_path)

    def unreadable(call_id):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(server.store, "load_call", unreadable)
    code, body = server.post(f"/whisper?X-IVR-Call={call_sid('CA1')}&X-IVR-Reason=parcel_lost",
                             CallSid=call_sid("CA2"))
    # A failed whisper would leave the caller unconnected: a silent one puts them through.
    assert code == 200 and ET.fromstring(body).find("Say") is None
    assert health(server)[1]["storage"] == "io_error"


def test_call_details_on_a_store_that_cannot_read_are_503_in_one_line(tmp_path, monkeypatch):
    from test_hostile_requests import calls_server

    server = calls_server(tmp_path, dashboard_token="d" * 24)

    def unreadable(call_id):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(server.store, "load_call", unreadable)
    code, _headers, body = server.request("GET", f"/calls/{call_sid('CA1')}",
                                          headers={"Authorization": "Bearer " + "d" * 24})
    assert (code, body) == (503, b"cannot read the call now\n")


def test_whisper_and_call_details_read_off_the_reactor_when_the_store_is(tmp_path):
    from test_hostile_requests import calls_server

    server = calls_server(tmp_path, dashboard_token="d" * 24)
    reads = []
    later: list = []

    def in_thread(function, *args):
        reads.append(function)
        later.append(defer.Deferred())
        later[-1].addCallback(lambda _: function(*args))
        return later[-1]

    voice(server, 0)
    server.handler.read_in_thread = in_thread
    answers: list = []
    server.http.request("POST", BASE + f"/whisper?X-IVR-Call={call_sid('CA1')}&X-IVR-Reason=x",
                        headers=FORM, data=urlencode({"CallSid": call_sid("CA2")}).encode()
                        ).addCallback(answers.append)
    server.http.flush()
    assert answers == [] and len(later) == 1  # waits for the read
    later[0].callback(None)
    server.http.flush()
    assert answers[0].code == 200
    assert ET.fromstring(server.successful(answers[0].content())).find("Say") is not None
    details: list = []
    server.http.request("GET", BASE + f"/calls/{call_sid('CA1')}",
                        headers={"Authorization": "Bearer " + "d" * 24}).addCallback(details.append)
    server.http.flush()
    later[1].errback(sqlite3.OperationalError("disk I/O error"))
    server.http.flush()
    assert details[0].code == 503


def test_a_flow_edit_on_a_full_disk_serves_at_once_and_is_kept_once_it_can_be(tmp_path):
    server = failing_server(tmp_path)
    old = server.registry.current("post_sale").version
    flow_file = server.flows / "post_sale.yaml"
    flow_file.write_text(flow_file.read_text().replace("limits: {max_steps: 60",
                                                       "limits: {max_steps: 61"))
    server.conn.failing = disk_full()
    assert server.registry.reload_if_changed()  # no error: the reload timer goes on
    new = server.registry.current("post_sale").version
    assert new != old and server.store.flow_version("post_sale", new) is None
    server.conn.failing = None
    assert server.registry.reload_if_changed()  # the next tick keeps it
    assert server.store.flow_version("post_sale", new)["source"] == flow_file.read_text()
    assert not server.registry.reload_if_changed()
