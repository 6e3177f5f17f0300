"""What the reports and the dashboard read from an SQLite call log besides
their figures: the flows with calls, the reasons each stored flow version
describes, and the planner hints that need the log's own index names.

Each function takes the log as a :class:`sqlite_utils.Database` (the
read-only one the reports open), so the SQL and the schema's names stay
with the SQLite backend.
"""

from __future__ import annotations

import json

import yaml

__all__ = ["days_with_calls", "flow_sources", "flows_with_calls", "reason_descriptions",
           "reasons_of_latest_version", "stored_flow_version",
           "repeat_calls_index"]

#: The index that finds a caller's later calls for a reason (migration
#: 0003).  SQLite's planner, without statistics, prefers the narrower
#: (caller_hash, started_at) index and reads the table for each call:
#: three times slower.
_REPEAT_INDEX = "idx_calls_repeat"


def flows_with_calls(db) -> list[str]:
    """Flows that have at least one ended call, most calls first."""
    return [row["flow"] for row in db.query(
        "SELECT flow, COUNT(*) AS n FROM calls WHERE outcome IS NOT NULL "
        "GROUP BY flow ORDER BY n DESC, flow")]


def days_with_calls(db, flow: str) -> tuple[str | None, str | None]:
    """The first and last local days (``YYYY-MM-DD``) on which an ended
    call of ``flow`` started; (None, None) when it has none."""
    # started_at is local time as text, so its first ten characters are the local day.
    row = db.execute("SELECT min(substr(started_at, 1, 10)), max(substr(started_at, 1, 10)) "
                     "FROM calls WHERE flow = ? AND outcome IS NOT NULL", [flow]).fetchone()
    return (row[0], row[1]) if row else (None, None)


def reason_descriptions(db, flow: str, version: str) -> dict:
    """``{reason: description}`` of the stored ``version`` of ``flow`` (a
    description is a text, or ``{language: text}``); empty when the version
    is not stored or its YAML no longer reads."""
    row = next(iter(db.query("SELECT source FROM flow_versions WHERE flow = ? AND version = ?",
                             [flow, version])), None)
    return _reasons(row["source"]) if row else {}


def reasons_of_latest_version(db, flow: str, version: str | None) -> dict:
    """Like :func:`reason_descriptions`, of ``version`` when it is stored,
    else of the version of ``flow`` seen last."""
    row = next(iter(db.query(
        "SELECT source FROM flow_versions WHERE flow = ? ORDER BY (version = ?) DESC, "
        "first_seen DESC LIMIT 1", [flow, version or ""])), None)
    return _reasons(row["source"]) if row else {}


def flow_sources(db, flow: str | None = None) -> list[str]:
    """The YAML of every stored flow version (of ``flow`` only, when given)."""
    where = "WHERE flow = :flow" if flow else ""
    return [row["source"] for row in db.query(f"SELECT source FROM flow_versions {where}",
                                              {"flow": flow} if flow else {})]


def stored_flow_version(db, flow: str, version: str) -> dict | None:
    """The stored ``version`` of ``flow``: its YAML (``source``) and its
    prompts' texts (``prompts``, ``{"lang/name": text}``); None when not stored."""
    row = next(iter(db.query("SELECT source, prompts_json FROM flow_versions "
                             "WHERE flow = :flow AND version = :version",
                             {"flow": flow, "version": version})), None)
    if row is None:
        return None
    try:
        prompts = json.loads(row["prompts_json"])
    except ValueError:
        prompts = {}
    return {"source": row["source"], "prompts": prompts if isinstance(prompts, dict) else {}}


def repeat_calls_index(db) -> str:
    """``INDEXED BY`` the index that finds a caller's later calls, for the
    repeat-call query on ``calls``; '' when the log does not have it yet (a
    log not yet migrated by the server still reports, only slower)."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ? "
                       "AND tbl_name = 'calls'", [_REPEAT_INDEX]).fetchone()
    return f"INDEXED BY {_REPEAT_INDEX}" if found else ""


def _reasons(source: str) -> dict:
    # The stored text of a version that ran; read leniently, as a version
    # that no longer builds still has calls to report on.
    try:
        reasons = (yaml.safe_load(source) or {}).get("reasons")
    except (yaml.YAMLError, AttributeError):
        reasons = None
    return reasons if isinstance(reasons, dict) else {}
