"""The call log's schema, one named migration at a time (names never change:
existing databases record which ones they have)."""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Iterable

import sqlite_utils
from sqlite_utils.migrations import Migrations

#: Where a callback request stands with the helpdesk: ``pending`` (to be
#: sent, or being retried), ``sent``, ``failed`` (refused, or retries ran
#: out) or ``not_configured`` (the server has no helpdesk to tell).
CALLBACK_STATUSES = ("pending", "sent", "failed", "not_configured")


class UnknownMigration(ValueError):
    """``stop_before`` names a migration the set does not hold."""


class CheckedMigrations(Migrations):
    """sqlite-utils' :class:`Migrations`, whose :meth:`apply` refuses a
    ``stop_before`` name it does not hold: sqlite-utils ignores such a
    name (one CLI value is offered to every set), so a typo would apply
    every migration, and a test meant for an old schema would run on the
    new one."""

    def apply(self, db: sqlite_utils.Database, *,
              stop_before: str | Iterable[str] | None = None) -> None:
        """Apply the pending migrations, stopping before the first named
        in ``stop_before``; :class:`UnknownMigration` for a name the set
        does not hold, before anything is applied."""
        names = [stop_before] if isinstance(stop_before, str) else list(stop_before or ())
        known = [migration.name for migration in self._migrations]
        for name in names:
            if name not in known:
                raise UnknownMigration(_unknown(name, self.name, known))
        super().apply(db, stop_before=names or None)


def _unknown(name: str, set_name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
    return f"stop_before: no migration named {name!r} in the set {set_name!r}{hint}"


MIGRATIONS = CheckedMigrations("ivr")

#: The covering index of the reports' figures (migration 0012, on both
#: databases): a flow's calls in time order with every column a summary
#: counts or groups by.  Part of a migration: never changed (a column the
#: figures need later is a new migration).
REPORT_FIGURES_INDEX = "idx_calls_report_figures"
REPORT_FIGURES_COLUMNS = (
    "flow", "started_at", "version", "outcome", "cause", "reason", "lang", "provider",
    "transfer_result", "queue_seconds", "confirmed", "sms_sent", "ivr_seconds",
)


@MIGRATIONS(name="0001_initial")
def _initial(db: sqlite_utils.Database) -> None:
    for statement in (
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE flow_versions (
            flow TEXT NOT NULL,
            version TEXT NOT NULL,
            source TEXT NOT NULL,
            prompts_json TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            PRIMARY KEY (flow, version)
        )""",
        """CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            flow TEXT NOT NULL,
            version TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            caller_hash TEXT NOT NULL DEFAULT '',
            country TEXT,
            lang TEXT,
            reason TEXT,
            outcome TEXT,
            cause TEXT,
            confirmed INTEGER NOT NULL DEFAULT 0,
            handoff_kind TEXT,
            handoff_target TEXT,
            steps INTEGER NOT NULL DEFAULT 0,
            provider_status TEXT,
            duration_s INTEGER
        )""",
        "CREATE INDEX idx_calls_started_at ON calls (started_at)",
        "CREATE INDEX idx_calls_flow_version ON calls (flow, version)",
        "CREATE INDEX idx_calls_reason ON calls (reason)",
        "CREATE INDEX idx_calls_caller_hash_started_at ON calls (caller_hash, started_at)",
        """CREATE TABLE call_state (
            call_id TEXT PRIMARY KEY,
            turn INTEGER NOT NULL,
            state_json TEXT NOT NULL,
            response BLOB NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX idx_call_state_updated_at ON call_state (updated_at)",
        """CREATE TABLE node_events (
            call_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            flow TEXT NOT NULL,
            version TEXT NOT NULL,
            node TEXT NOT NULL,
            kind TEXT NOT NULL,
            input TEXT,
            branch TEXT,
            detail TEXT,
            at TEXT NOT NULL,
            PRIMARY KEY (call_id, seq)
        )""",
        "CREATE INDEX idx_node_events_flow_version_node ON node_events (flow, version, node)",
        """CREATE TABLE status_events (
            call_id TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            status TEXT NOT NULL,
            at TEXT,
            duration_s INTEGER,
            PRIMARY KEY (call_id, sequence)
        )""",
    ):
        db.execute(statement)


@MIGRATIONS(name="0002_exit_node_and_ivr_time")
def _exit_node_and_ivr_time(db: sqlite_utils.Database) -> None:
    """Where each call left the flow and how long it spent with the IVR
    (what the funnel and the cost saved need)."""
    for statement in (
        "ALTER TABLE calls ADD COLUMN exit_node TEXT",
        "ALTER TABLE calls ADD COLUMN ivr_seconds REAL",
        "CREATE INDEX idx_calls_flow_version_exit_node ON calls (flow, version, exit_node)",
    ):
        db.execute(statement)


@MIGRATIONS(name="0003_report_indexes")
def _report_indexes(db: sqlite_utils.Database) -> None:
    """What the deflection report reads from indexes alone (ivr.reports.analytics):

    - repeat calls: a caller's calls for a reason in time order, with their
      outcome (julianday() honours the UTC offset of started_at, so calls
      either side of a daylight-saving change are in order);
    - the funnel: distinct calls per node of a flow version.  The node
      events index gains call_id instead of becoming a second index, so a
      turn still writes one index entry per event beside the primary key.
    """
    for statement in (
        "CREATE INDEX idx_calls_repeat ON calls "
        "(caller_hash, reason, julianday(started_at), outcome)",
        "DROP INDEX idx_node_events_flow_version_node",
        "CREATE INDEX idx_node_events_flow_version_node_call ON node_events "
        "(flow, version, node, call_id)",
    ):
        db.execute(statement)


@MIGRATIONS(name="0004_open_calls_index")
def _open_calls_index(db: sqlite_utils.Database) -> None:
    """The sweep looks for calls not ended: a partial index holds only
    those, so it stays small however long the log grows."""
    db.execute("CREATE INDEX idx_calls_open ON calls (call_id) WHERE ended_at IS NULL")


@MIGRATIONS(name="0005_callback_requests")
def _callback_requests(db: sqlite_utils.Database) -> None:
    """Callers to call back: one row per call, written with the turn that
    kept the number, and the helpdesk's delivery of it.  The number is
    sealed like the call state; ``number_hash`` is the caller hash's HMAC,
    so a request can be matched with the caller's calls."""
    statuses = ", ".join(f"'{s}'" for s in CALLBACK_STATUSES)
    for statement in (
        f"""CREATE TABLE callback_requests (
            call_id TEXT PRIMARY KEY,
            flow TEXT NOT NULL,
            version TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            number_sealed TEXT NOT NULL,
            number_hash TEXT NOT NULL,
            lang TEXT,
            reason TEXT NOT NULL,
            order_number TEXT,
            slot TEXT,
            status TEXT NOT NULL CHECK (status IN ({statuses})),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            delivered_at TEXT
        )""",
        "CREATE INDEX idx_callback_requests_requested_at ON callback_requests (requested_at)",
        # Resending after a restart reads the pending ones only.
        "CREATE INDEX idx_callback_requests_pending ON callback_requests (requested_at) "
        "WHERE status = 'pending'",
    ):
        db.execute(statement)


@MIGRATIONS(name="0006_sms_sent")
def _sms_sent(db: sqlite_utils.Database) -> None:
    """Texts sent during each call, so the report counts them per reason."""
    db.execute("ALTER TABLE calls ADD COLUMN sms_sent INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS(name="0007_reached_index")
def _reached_index(db: sqlite_utils.Database) -> None:
    """The funnel counts the calls that reached each node.  It counted
    distinct call ids on a (flow, version, node, call_id) index, where
    every event went to a random place (call ids are random): two more
    pages written per turn, a third of a turn's writes.  Each call's first
    event at a node is now flagged, and a partial index of the flagged
    events, in the order they come, is counted instead."""
    db.execute("ALTER TABLE node_events ADD COLUMN first_visit INTEGER NOT NULL DEFAULT 0")
    mark_first_visits(db)
    db.execute("CREATE INDEX idx_node_events_reached ON node_events (flow, version, node) "
               "WHERE first_visit = 1")
    db.execute("DROP INDEX IF EXISTS idx_node_events_flow_version_node_call")


@MIGRATIONS(name="0008_no_state_time_index")
def _no_state_time_index(db: sqlite_utils.Database) -> None:
    """No query reads call states by time (the sweep finds open calls by
    the calls table's partial index, then each state by its call id), yet
    every turn moved its state's entry in that index."""
    db.execute("DROP INDEX IF EXISTS idx_call_state_updated_at")


@MIGRATIONS(name="0009_transfer_result")
def _transfer_result(db: sqlite_utils.Database) -> None:
    """What happened at the human's end of a transfer (``answered``,
    ``abandoned_in_queue``, ``no_answer``) and the seconds the caller
    waited in the agents' queue, so reports tell a caller who gave up in
    the queue from one an agent answered.  Calls logged before stay NULL
    (unknown)."""
    for statement in (
        "ALTER TABLE calls ADD COLUMN transfer_result TEXT",
        "ALTER TABLE calls ADD COLUMN queue_seconds REAL",
    ):
        db.execute(statement)


@MIGRATIONS(name="0010_leases")
def _leases(db: sqlite_utils.Database) -> None:
    """Leases on work that must run once however many server processes
    share the file (the sweep, helpdesk re-sends, checkpoints, the
    retention purge): who holds each, and until when (UTC, ISO 8601 with
    microseconds, so times compare as strings)."""
    db.execute("""CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""")


@MIGRATIONS(name="0011_provider")
def _provider(db: sqlite_utils.Database) -> None:
    """The voice provider each call came by (``twilio``, ``telnyx``…), so
    reports, the dashboard and ``/metrics`` break calls down by provider.
    Calls logged before it all came by Twilio, the only provider then."""
    db.execute("ALTER TABLE calls ADD COLUMN provider TEXT")
    db.execute("UPDATE calls SET provider = 'twilio'")


@MIGRATIONS(name="0012_report_figures_index")
def _report_figures_index(db: sqlite_utils.Database) -> None:
    """What a report of one flow over a period reads (the dashboard's four
    summaries, a period's funnel version): a covering index of every
    column the figures count, so a period of a flow is one range of the
    index and no table row is read (half the time for the dashboard's
    figures on a log of 200,000 calls).  Its entries change only when a
    call gets its reason, language or outcome, not with each turn's step."""
    db.execute(f"CREATE INDEX {REPORT_FIGURES_INDEX} ON calls ({', '.join(REPORT_FIGURES_COLUMNS)})")


#: Each flow version's node as first counted (its kind: one per node of a
#: version, whose name is a digest of the flow) and how many calls reached it.
REACHED_COUNTS = ("CREATE TABLE node_reached (flow TEXT NOT NULL, version TEXT NOT NULL, "
                  "node TEXT NOT NULL, kind TEXT NOT NULL, reached INTEGER NOT NULL, "
                  "PRIMARY KEY (flow, version, node)) WITHOUT ROWID")

#: What the flagged events of the log add up to, per flow version and node.
COUNT_FLAGGED = ("SELECT flow, version, node, min(kind), count(*) FROM node_events "
                 "WHERE first_visit = 1 GROUP BY flow, version, node")


@MIGRATIONS(name="0013_reached_counts")
def _reached_counts(db: sqlite_utils.Database) -> None:
    """The funnel's calls per node, counted as the events are written
    (``node_reached``), instead of the partial index of flagged events:
    each node of a commit's turns wrote its own page of that index, 15 of
    the 51 pages a commit wrote under load; the counts of a flow version
    share one page.  The store adds a turn's first visits to the counts
    it writes before each commit (``ivr.store.sqlite.node_log``); a
    trigger takes the events deleted (the retention purge, an erasure)
    off; :func:`mark_first_visits` counts a log built in bulk again."""
    db.execute(REACHED_COUNTS)
    db.execute(f"INSERT INTO node_reached (flow, version, node, kind, reached) {COUNT_FLAGGED}")
    db.execute("CREATE TRIGGER node_reached_forget AFTER DELETE ON node_events "
               "WHEN OLD.first_visit = 1 BEGIN "
               "UPDATE node_reached SET reached = reached - 1 "
               "WHERE flow = OLD.flow AND version = OLD.version AND node = OLD.node; END")
    db.execute("DROP INDEX IF EXISTS idx_node_events_reached")


@MIGRATIONS(name="0014_callback_last_attempt")
def _callback_last_attempt(db: sqlite_utils.Database) -> None:
    """When the latest attempt to send each callback request started (UTC,
    fixed width, so times compare as text), written as it starts: a
    pending request no process has attempted for longer than a sender's
    whole retry schedule was left by a process that died, and a running
    server sends it (``ivr.server.helpdesk``).  Requests kept before stay
    NULL: their request time stands in for it."""
    db.execute("ALTER TABLE callback_requests ADD COLUMN last_attempt_at TEXT")


def mark_first_visits(db: sqlite_utils.Database) -> None:
    """Flag each call's first event at each node (events written without
    the flag: a log from before it, or one built in bulk), and count the
    flagged events again (:func:`count_first_visits`)."""
    db.execute("UPDATE node_events SET first_visit = 1 WHERE rowid IN "
               "(SELECT min(rowid) FROM node_events GROUP BY call_id, node)")
    if "node_reached" in db.table_names():  # not during migration 0007
        count_first_visits(db)


def count_first_visits(db: sqlite_utils.Database) -> None:
    """Count the log's flagged events again into ``node_reached``: after
    events were written with their flags by anything but the store (a
    log built in bulk, a test's)."""
    db.execute("DELETE FROM node_reached")
    db.execute(f"INSERT INTO node_reached (flow, version, node, kind, reached) {COUNT_FLAGGED}")


def _apply_migrations(db: sqlite_utils.Database) -> None:
    try:
        MIGRATIONS.apply(db)
    except sqlite3.DatabaseError:
        # Another process applied them between our check and our write.
        if MIGRATIONS.pending(db):
            raise
