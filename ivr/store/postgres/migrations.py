"""The call log's schema in PostgreSQL: the SQLite store's migrations
(``ivr.store.sqlite.migrations``), under the same names and in the same
order, in PostgreSQL's types (BIGINT, DOUBLE PRECISION, BYTEA), and the
leases several servers share.

A database records the migrations it has in ``ivr_migrations``.  Servers
starting together apply them once: each applies under an advisory lock,
in one transaction, and skips what another applied first.
"""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg

from ivr.store.sqlite.migrations import (
    CALLBACK_STATUSES,
    COUNT_FLAGGED,
    REPORT_FIGURES_COLUMNS,
    REPORT_FIGURES_INDEX,
)

__all__ = ["FOLD_REACHED", "MIGRATIONS", "apply_migrations", "pending_migrations"]

#: The advisory lock servers take to migrate (any number the product owns).
_MIGRATION_LOCK = 0x1F0_CA11

_STATUSES = ", ".join(f"'{status}'" for status in CALLBACK_STATUSES)

#: (name, statements), oldest first; names never change.
MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    ("0001_initial", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE flow_versions (
            flow TEXT NOT NULL, version TEXT NOT NULL, source TEXT NOT NULL,
            prompts_json TEXT NOT NULL, first_seen TEXT NOT NULL,
            PRIMARY KEY (flow, version))""",
        """CREATE TABLE calls (
            call_id TEXT PRIMARY KEY, flow TEXT NOT NULL, version TEXT NOT NULL,
            started_at TEXT NOT NULL, ended_at TEXT, caller_hash TEXT NOT NULL DEFAULT '',
            country TEXT, lang TEXT, reason TEXT, outcome TEXT, cause TEXT,
            confirmed BIGINT NOT NULL DEFAULT 0, handoff_kind TEXT, handoff_target TEXT,
            steps BIGINT NOT NULL DEFAULT 0, provider_status TEXT, duration_s BIGINT)""",
        "CREATE INDEX idx_calls_started_at ON calls (started_at)",
        "CREATE INDEX idx_calls_flow_version ON calls (flow, version)",
        "CREATE INDEX idx_calls_reason ON calls (reason)",
        "CREATE INDEX idx_calls_caller_hash_started_at ON calls (caller_hash, started_at)",
        """CREATE TABLE call_state (
            call_id TEXT PRIMARY KEY, turn BIGINT NOT NULL, state_json BYTEA NOT NULL,
            response BYTEA NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE INDEX idx_call_state_updated_at ON call_state (updated_at)",
        """CREATE TABLE node_events (
            call_id TEXT NOT NULL, seq BIGINT NOT NULL, flow TEXT NOT NULL,
            version TEXT NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL, input TEXT,
            branch TEXT, detail TEXT, at TEXT NOT NULL, PRIMARY KEY (call_id, seq))""",
        "CREATE INDEX idx_node_events_flow_version_node ON node_events (flow, version, node)",
        """CREATE TABLE status_events (
            call_id TEXT NOT NULL, sequence BIGINT NOT NULL, status TEXT NOT NULL, at TEXT,
            duration_s BIGINT, PRIMARY KEY (call_id, sequence))""",
    )),
    ("0002_exit_node_and_ivr_time", (
        "ALTER TABLE calls ADD COLUMN exit_node TEXT",
        "ALTER TABLE calls ADD COLUMN ivr_seconds DOUBLE PRECISION",
        "CREATE INDEX idx_calls_flow_version_exit_node ON calls (flow, version, exit_node)",
    )),
    # SQLite indexes julianday(started_at); a cast of text to a time is
    # not immutable in PostgreSQL, so the text (local, with its offset) is.
    ("0003_report_indexes", (
        "CREATE INDEX idx_calls_repeat ON calls (caller_hash, reason, started_at, outcome)",
        "DROP INDEX idx_node_events_flow_version_node",
        "CREATE INDEX idx_node_events_flow_version_node_call ON node_events "
        "(flow, version, node, call_id)",
    )),
    ("0004_open_calls_index", (
        "CREATE INDEX idx_calls_open ON calls (call_id) WHERE ended_at IS NULL",
    )),
    ("0005_callback_requests", (
        f"""CREATE TABLE callback_requests (
            call_id TEXT PRIMARY KEY, flow TEXT NOT NULL, version TEXT NOT NULL,
            requested_at TEXT NOT NULL, number_sealed TEXT NOT NULL,
            number_hash TEXT NOT NULL, lang TEXT, reason TEXT NOT NULL, order_number TEXT,
            slot TEXT, status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
            attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT, delivered_at TEXT)""",
        "CREATE INDEX idx_callback_requests_requested_at ON callback_requests (requested_at)",
        "CREATE INDEX idx_callback_requests_pending ON callback_requests (requested_at) "
        "WHERE status = 'pending'",
    )),
    ("0006_sms_sent", (
        "ALTER TABLE calls ADD COLUMN sms_sent BIGINT NOT NULL DEFAULT 0",
    )),
    ("0007_reached_index", (
        "ALTER TABLE node_events ADD COLUMN first_visit BIGINT NOT NULL DEFAULT 0",
        "UPDATE node_events SET first_visit = 1 WHERE (call_id, seq) IN "
        "(SELECT call_id, min(seq) FROM node_events GROUP BY call_id, node)",
        "CREATE INDEX idx_node_events_reached ON node_events (flow, version, node) "
        "WHERE first_visit = 1",
        "DROP INDEX IF EXISTS idx_node_events_flow_version_node_call",
    )),
    ("0008_no_state_time_index", (
        "DROP INDEX IF EXISTS idx_call_state_updated_at",
    )),
    ("0009_transfer_result", (
        "ALTER TABLE calls ADD COLUMN transfer_result TEXT",
        "ALTER TABLE calls ADD COLUMN queue_seconds DOUBLE PRECISION",
    )),
    # Work that must run once among servers (the sweep, helpdesk re-sends)
    # is done by whoever holds its lease (CallStore.take_lease).
    ("0010_leases", (
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)""",
    )),
    # The voice provider each call came by; calls logged before came by Twilio.
    ("0011_provider", (
        "ALTER TABLE calls ADD COLUMN provider TEXT",
        "UPDATE calls SET provider = 'twilio'",
    )),
    # A flow's calls over a period read from the index alone (an
    # index-only scan once the table is vacuumed).
    ("0012_report_figures_index", (
        f"CREATE INDEX {REPORT_FIGURES_INDEX} ON calls ({', '.join(REPORT_FIGURES_COLUMNS)})",
    )),
    # The funnel's calls per node, counted as the events are written (see
    # SQLite's).  Several servers write here at once, so a node's count is
    # not one row that every turn updates (each group's transaction would
    # hold it until its commit, and two could wait on each other): a
    # trigger adds a row of +1 for each first visit written and of -1 for
    # each one deleted, the funnel sums them, and the retention purge folds
    # them into one row per node (PostgresCallStore.purge_before).  Until
    # then a version's rows are as many as its first visits, as the partial
    # index of them had entries: the index holds what the funnel reads (kind
    # and count), so PostgreSQL may sum them from the index alone (an
    # index-only scan, once vacuum has marked their pages visible), as it
    # counted that index's entries.
    ("0013_reached_counts", (
        "CREATE TABLE node_reached (flow TEXT NOT NULL, version TEXT NOT NULL, "
        "node TEXT NOT NULL, kind TEXT NOT NULL, reached BIGINT NOT NULL)",
        "CREATE INDEX idx_node_reached ON node_reached (flow, version, node) "
        "INCLUDE (kind, reached)",
        f"INSERT INTO node_reached (flow, version, node, kind, reached) {COUNT_FLAGGED}",
        """CREATE FUNCTION ivr_count_first_visits() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                IF OLD.first_visit = 1 THEN
                    INSERT INTO node_reached (flow, version, node, kind, reached)
                    VALUES (OLD.flow, OLD.version, OLD.node, OLD.kind, -1);
                END IF;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                IF NEW.first_visit = 1 THEN
                    INSERT INTO node_reached (flow, version, node, kind, reached)
                    VALUES (NEW.flow, NEW.version, NEW.node, NEW.kind, 1);
                END IF;
            END IF;
            RETURN NULL;
        END $$""",
        # Called only for the rows that count (most events are not first visits).
        "CREATE TRIGGER node_events_counted AFTER INSERT ON node_events "
        "FOR EACH ROW WHEN (NEW.first_visit = 1) EXECUTE FUNCTION ivr_count_first_visits()",
        "CREATE TRIGGER node_events_uncounted AFTER DELETE ON node_events "
        "FOR EACH ROW WHEN (OLD.first_visit = 1) EXECUTE FUNCTION ivr_count_first_visits()",
        "CREATE TRIGGER node_events_recounted AFTER UPDATE OF first_visit, flow, version, node, "
        "kind ON node_events FOR EACH ROW WHEN (OLD.first_visit = 1 OR NEW.first_visit = 1) "
        "EXECUTE FUNCTION ivr_count_first_visits()",
        "DROP INDEX IF EXISTS idx_node_events_reached",
    )),
    # When the latest attempt to send a callback request started (see SQLite's).
    ("0014_callback_last_attempt", (
        "ALTER TABLE callback_requests ADD COLUMN last_attempt_at TEXT",
    )),
]

#: The counts of :data:`MIGRATIONS` ``0013_reached_counts`` folded into one
#: row per node (rows another transaction adds meanwhile are not seen, so
#: not folded).
FOLD_REACHED = (
    "WITH counted AS (DELETE FROM node_reached "
    "RETURNING flow, version, node, kind, reached) "
    "INSERT INTO node_reached (flow, version, node, kind, reached) "
    "SELECT flow, version, node, min(kind), sum(reached) FROM counted "
    "GROUP BY flow, version, node HAVING sum(reached) <> 0")


def _applied(conn: psycopg.Connection) -> set[str]:
    conn.execute("CREATE TABLE IF NOT EXISTS ivr_migrations (name TEXT PRIMARY KEY, "
                 "applied_at TEXT NOT NULL)")
    return {row[0] for row in conn.execute("SELECT name FROM ivr_migrations")}


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    """The names of the migrations the database does not have yet."""
    applied = _applied(conn)
    return [name for name, _statements in MIGRATIONS if name not in applied]


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Bring the database up to date, in one transaction; the names applied."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
        applied = _applied(conn)
        done = []
        for name, statements in MIGRATIONS:
            if name in applied:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO ivr_migrations (name, applied_at) VALUES (%s, %s)",
                         [name, datetime.now(timezone.utc).isoformat(timespec="seconds")])
            done.append(name)
    return done
