"""Pages a request writes to SQLite's write-ahead log, by b-tree: the
demo calls of ``tools/profile_turns.py`` played in one process, with the
log's checkpoints off while they are measured.

    python tools/wal_frames.py --calls 20 --warm 5 --batches 5    # 20 turns a commit
    python tools/wal_frames.py --calls 5 --warm 400 --batches 20  # 5, on a larger log

``--calls`` calls play each step together, so each commit holds that many
turns (wrk's 20 connections give about 17 under ``ivr-serve``).  After
``--warm`` batches the log is checkpointed and started over; the frames of
the next ``--batches`` batches are read from the log's frame headers and
each page named by the b-tree (table or index) that holds it, through
SQLite's ``dbstat`` on a copy of the file.  Every frame is a whole page
written (two ``pwrite`` calls) and later copied by a checkpoint.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import profile_turns  # noqa: E402

#: A WAL file's header, and each frame's (SQLite's file format, section 4).
_WAL_HEADER = struct.Struct(">IIIIII")
_FRAME_HEADER = struct.Struct(">IIII")
_WAL_HEADER_SIZE, _FRAME_HEADER_SIZE = 32, 24


def commits_in_log(wal: bytes) -> list[list[int]]:
    """The page numbers each commit of the log ``wal`` wrote, in order
    (frames of an earlier run of the log, with other salts, are left out)."""
    if len(wal) < _WAL_HEADER_SIZE:
        return []
    _magic, _version, page_size, _sequence, salt1, salt2 = _WAL_HEADER.unpack_from(wal)
    commits, pages, at = [], [], _WAL_HEADER_SIZE
    while at + _FRAME_HEADER_SIZE + page_size <= len(wal):
        page, size_after, frame_salt1, frame_salt2 = _FRAME_HEADER.unpack_from(wal, at)
        if (frame_salt1, frame_salt2) != (salt1, salt2):
            break
        pages.append(page)
        if size_after:  # the commit's last frame
            commits.append(pages)
            pages = []
        at += _FRAME_HEADER_SIZE + page_size
    return commits


def btrees_of_pages(db_path: Path) -> dict[int, str]:
    """{page number: the table or index it belongs to} in a copy of the
    database and its log (reading it must not touch the measured files)."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "copy.db"
        shutil.copy(db_path, copy)
        shutil.copy(f"{db_path}-wal", f"{copy}-wal")
        conn = sqlite3.connect(copy)
        try:
            return dict(conn.execute("SELECT pageno, name FROM dbstat"))
        finally:
            conn.close()


def measure(calls: int, warm: int, batches: int, folder: Path) -> tuple[int, list[list[int]], dict]:
    """Play ``warm`` then ``batches`` batches of ``calls`` calls a step:
    (requests measured, the pages of each commit, page -> b-tree)."""
    profile_turns.CALLS_AT_A_TIME = calls
    stores = []
    opened = profile_turns.open_database

    def open_and_keep(*args, **kwargs):
        store, orders = opened(*args, **kwargs)
        stores.append(store)
        return store, orders

    profile_turns.open_database = open_and_keep
    try:
        bench = profile_turns.Bench(folder / "ivr.db",
                                    profile_turns.parse_moment(profile_turns.DEFAULT_MOMENT))
    finally:
        profile_turns.open_database = opened
    conn = stores[0].db.conn
    for _ in range(warm):
        bench.batch()
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the log holds every frame measured
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = bench.requests
    for _ in range(batches):
        bench.batch()
    commits = commits_in_log((folder / "ivr.db-wal").read_bytes())
    return bench.requests - before, commits, btrees_of_pages(folder / "ivr.db")


def report(requests: int, commits: list[list[int]], btrees: dict[int, str]) -> list[str]:
    """The lines printed: frames a request and a commit, then by b-tree."""
    frames = sum(len(pages) for pages in commits)
    lines = [f"requests {requests}, commits {len(commits)}, frames {frames}: "
             f"{frames / requests:.2f} a request, {frames / max(len(commits), 1):.1f} a commit"]
    by_btree = collections.Counter(btrees.get(page, "(new page)")
                                   for pages in commits for page in pages)
    lines += [f"  {name:<42} {count / requests:.3f} a request"
              for name, count in by_btree.most_common()]
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls a step (turns a commit)")
    parser.add_argument("--warm", type=int, default=5, help="batches before measuring")
    parser.add_argument("--batches", type=int, default=5, help="batches measured")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        for line in report(*measure(args.calls, args.warm, args.batches, Path(folder))):
            print(line)


if __name__ == "__main__":
    main()
