"""A real disk that fills while the server answers turns.

The call log lives on a small tmpfs (``mount -t tmpfs -o size=...``),
which needs root; without it the test is skipped and says why.  The
server runs in process on the real SQLite store, with group commit, as
``ivr-serve`` does.
"""

import errno
import os
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET

import pytest
from test_storage_faults import APOLOGY_FR, call_sid, health, metrics, voice
from test_web import Server, says

DISK_SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of DISK_SIZE mounted on a folder of ``tmp_path``."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (mount -t tmpfs -o size=8m)")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command to make a small filesystem with")
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(disk)],
                          capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def fill(path):
    """Write ``path`` until the filesystem has not a byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 4096, 512, 64, 1):
            try:
                while True:
                    os.write(fd, b"x" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


def transfers(twiml: bytes) -> bool:
    root = ET.fromstring(twiml)
    return root.find("Enqueue") is not None or root.find("Dial") is not None


def test_a_full_disk_answers_every_turn_with_the_apology_and_recovers_losing_nothing(
        tmp_path, small_disk):
    server = Server(tmp_path, group_commit=True, db_path=small_disk / "ivr.db")
    # No automatic checkpoint: one could restart the WAL inside its
    # current size and let some commits through on the full disk (right,
    # but not what this test is about).
    server.store.db.execute("PRAGMA wal_autocheckpoint = 0")
    acknowledged = []
    for n in range(20):
        sid = call_sid(f"CAOK{n:02d}")
        assert voice(server, 0, sid=sid)[0] == 200
        assert voice(server, 1, sid=sid, Digits="1")[0] == 200
        acknowledged.append(sid)

    fill(small_disk / "filler")
    answers = [voice(server, 2, sid=sid, Digits="1") for sid in acknowledged[:10]]
    answers += [voice(server, 0, sid=call_sid(f"CAFULL{n:02d}")) for n in range(10)]
    for code, body in answers:
        assert code == 200
        assert says(body) == APOLOGY_FR and transfers(body)
    code, body = health(server)
    assert (code, body["storage"]) == (503, "disk_full")
    assert 'ivr_storage_failures_total{cause="disk_full"}' in metrics(server)
    assert voice(server, 2, sid=acknowledged[0], Digits="1") == answers[0]  # a retry

    os.unlink(small_disk / "filler")
    code, body = voice(server, 0, sid=call_sid("CAAFTER"))
    assert code == 200 and APOLOGY_FR not in says(body)  # served normally again
    server.handler.probe_storage()
    assert health(server)[0] == 200 and server.handler.calls_in_memory == 0
    server.store.close()

    db = sqlite3.connect(small_disk / "ivr.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        turns = dict(db.execute("SELECT call_id, turn FROM call_state"))
        outcomes = dict(db.execute("SELECT call_id, outcome FROM calls"))
        events = dict(db.execute("SELECT call_id, count(*) FROM node_events GROUP BY call_id"))
    finally:
        db.close()
    for sid in acknowledged:  # every turn acknowledged before the fault
        assert turns[sid] >= 1 and events[sid] >= 2
    for sid in acknowledged[:10] + [call_sid(f"CAFULL{n:02d}") for n in range(10)]:
        assert outcomes[sid] == "failed"  # answered from memory, written since
    assert call_sid("CAAFTER") in turns
