"""One call from end to end: what ``ivr-report call`` prints and the
dashboard's call page shows.

:func:`call_timeline` reads the call from the log as plain data (what
``--json`` prints); :func:`describe` turns it into labelled lines in the
operator's language, which the terminal and the page lay out each their
own way.  The caller's number is never in either: the log does not hold
it, and the caller's hash is left out too.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from ivr.flow.kinds import KINDS
from ivr.i18n import N_, Formats, _
from ivr.reports.call_queries import FAILSAFE_BRANCH, call_events, call_row, flow_version
from ivr.reports.queries import ReportError

__all__ = ["OUTCOME_NAMES", "call_timeline", "describe"]

#: Node kinds that listen to the caller: their event's input is what was said or pressed.
GATHERING_KINDS = tuple(name for name, kind in KINDS.items() if kind.gathers)

_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_EXPRESSION = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_SSML_TAG = re.compile(r"<[^>]*>")
_DIGITS = re.compile(r"[0-9*#]+\Z")


def call_timeline(db, call_id: str) -> dict:
    """The call ``call_id`` as plain data: its facts, the reason's
    descriptions, the fail-safe's cause, and one step per node event, with
    its offset from the start in seconds and what was said at the node.
    Raises :class:`ReportError` for a call the log does not have."""
    row = call_row(db, call_id)
    if row is None:
        raise ReportError(unknown_call_message(db, call_id))
    stored = flow_version(db, row["flow"], row["version"])
    started = _moment(row["started_at"])
    steps = []
    for event in call_events(db, call_id):
        at = _moment(event["at"])
        steps.append({
            "seq": event["seq"], "node": event["node"], "kind": event["kind"],
            "offset_s": None if at is None or started is None else (at - started).total_seconds(),
            "said": _said(stored, event, row["lang"]),
            "input": event["input"], "branch": event["branch"], "detail": event["detail"],
        })
    failsafe = next((s["detail"] for s in steps if s["branch"] == FAILSAFE_BRANCH), None)
    description = stored["reasons"].get(row["reason"]) if row["reason"] else None
    return {"call": row, "reason_description": description,
            "failsafe_cause": failsafe, "steps": steps}


def unknown_call_message(db, call_id: str) -> str:
    """One line: the call is not in the log, and how to find one that is."""
    latest = next(iter(db.query("SELECT MAX(started_at) AS latest FROM calls")), {}).get("latest")
    since = latest[:10] if latest else date.today().isoformat()
    return _("No call {call_id!r} in this log; list calls with: ivr-report calls --since {since}"
             ).format(call_id=call_id, since=since)


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _said(stored: dict, event: dict, lang: str | None) -> list[dict]:
    """The prompts the node says (its ``say:``), each with its text when the
    stored version has it in the call's language (placeholders as
    ``{name}``)."""
    node = stored["nodes"].get(event["node"])
    if not isinstance(node, dict):
        return []
    names = node.get("say") or node.get("prompt") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        return []
    return [{"prompt": str(name), "text": _prompt_text(stored["prompts"], lang, str(name))}
            for name in names]


def _prompt_text(prompts: dict, lang: str | None, name: str) -> str | None:
    """The prompt's text with its comments dropped and each ``{{ x }}`` as
    ``{x}``; None when it is not stored or depends on conditions."""
    template = prompts.get(f"{lang}/{name}")
    if not isinstance(template, str) or "{%" in template:
        return None
    text = _EXPRESSION.sub(lambda m: "{" + m.group(1) + "}", _COMMENT.sub("", template))
    text = _SSML_TAG.sub(" ", text)  # breaks and language switches are not words
    return " ".join(text.split()) or None


# -- in the operator's language ----------------------------------------------------

LABELS = {
    "call": N_("Call"), "started": N_("Started"), "flow": N_("Flow"), "version": N_("Version"),
    "provider": N_("Provider"), "language": N_("Language"), "outcome": N_("Outcome"),
    "reason": N_("Reason"), "cause": N_("Transfer cause"), "exit_node": N_("Left the flow at"),
    "transfer": N_("Transfer"), "transfer_result": N_("Transfer result"),
    "queue_wait": N_("Wait in the agents' queue"), "failsafe": N_("Fail-safe"), "ivr_time": N_("Time in the IVR"),
    "said": N_("Said"), "heard": N_("Heard"), "pressed": N_("Pressed"), "went": N_("Went to"),
    "result": N_("Result"), "condition": N_("Condition"), "detail": N_("Detail"),
    "steps": N_("Timeline"), "ongoing": N_("ongoing"), "none": N_("none"),
}


#: Outcomes as the operator reads them.
OUTCOME_NAMES = {"self_served": N_("Self-served"), "transferred": N_("Transferred"),
                 "abandoned": N_("Abandoned"), "failed": N_("Failed")}


def describe(timeline: dict, fmt: Formats) -> dict:
    """The timeline as the operator reads it: ``facts`` as (label, text)
    pairs, then ``steps`` each with its time, node, kind and (label, text)
    lines, every label and word in ``fmt``'s language."""
    call = timeline["call"]
    t = fmt.gettext
    facts = [(t(LABELS["call"]), call["call_id"]),
             (t(LABELS["started"]), _when(call["started_at"], fmt)),
             (t(LABELS["flow"]), f"{call['flow']} {call['version']}")]
    if call.get("provider"):
        facts.append((t(LABELS["provider"]), call["provider"]))
    facts.append((t(LABELS["language"]), call["lang"] or "–"))
    outcome = call["outcome"]
    facts.append((t(LABELS["outcome"]), t(OUTCOME_NAMES[outcome]) if outcome in OUTCOME_NAMES
                  else outcome or t(LABELS["ongoing"])))
    facts.append((t(LABELS["reason"]), _reason(timeline, fmt)))
    if call["cause"]:
        facts.append((t(LABELS["cause"]), call["cause"]))
    if call["exit_node"]:
        facts.append((t(LABELS["exit_node"]), call["exit_node"]))
    if call.get("handoff_kind"):
        facts += _transfer(call, fmt)
    if timeline["failsafe_cause"]:
        facts.append((t(LABELS["failsafe"]), timeline["failsafe_cause"]))
    elif call["outcome"] == "failed":
        facts.append((t(LABELS["failsafe"]), fmt.gettext(
            "The server's last resort took the call; see the server log for the error.")))
    if call.get("ivr_seconds") is not None:
        facts.append((t(LABELS["ivr_time"]), _seconds(call["ivr_seconds"], fmt)))
    steps = [{"offset": _offset(step["offset_s"]), "node": step["node"], "kind": step["kind"],
              "lines": _step_lines(step, fmt)} for step in timeline["steps"]]
    return {"facts": facts, "steps": steps}


def _when(started_at: str, fmt: Formats) -> str:
    moment = _moment(started_at)
    if moment is None:
        return started_at
    return f"{fmt.moment(moment)} ({moment.strftime('%z')[:3]}:{moment.strftime('%z')[3:]})"


def _reason(timeline: dict, fmt: Formats) -> str:
    reason = timeline["call"]["reason"]
    if not reason:
        return fmt.gettext(LABELS["none"])
    description = timeline["reason_description"]
    if isinstance(description, dict):  # {language: text}: the operator's, else the call's
        description = next((text for lang, text in description.items()
                            if str(lang).split("-")[0].lower() == fmt.lang),
                           description.get(timeline["call"]["lang"]))
    return f"{reason} ({description})" if description else reason


def _transfer(call: dict, fmt: Formats) -> list[tuple[str, str]]:
    """Where the call was put through, what happened there, how long the
    caller waited in the agents' queue (a callback's number is not shown)."""
    t = fmt.gettext
    target = call.get("handoff_target")
    facts = [(t(LABELS["transfer"]), f"{call['handoff_kind']} {target}" if target
              else call["handoff_kind"])]
    if call.get("transfer_result"):
        facts.append((t(LABELS["transfer_result"]), call["transfer_result"]))
    if call.get("queue_seconds") is not None:
        facts.append((t(LABELS["queue_wait"]), _seconds(call["queue_seconds"], fmt)))
    return facts


def _seconds(value: float, fmt: Formats) -> str:
    return fmt.gettext("{seconds} s").format(seconds=fmt.number(value))


def _offset(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = int(round(seconds))
    return f"+{whole // 60}:{whole % 60:02d}"


def _step_lines(step: dict, fmt: Formats) -> list[tuple[str, str]]:
    """What happened at one node, as labelled lines."""
    t = fmt.gettext
    lines = [(t(LABELS["said"]), f"{s['prompt']}: “{s['text']}”" if s["text"] else s["prompt"])
             for s in step["said"]]
    value, branch, detail = step["input"], step["branch"], step["detail"]
    if branch == FAILSAFE_BRANCH:
        return lines + [(t(LABELS["failsafe"]), detail or "–")]
    if step["kind"] in GATHERING_KINDS and value is not None:
        label = LABELS["pressed"] if _DIGITS.match(value) else LABELS["heard"]
        lines.append((t(label), value + (f" ({detail})" if detail else "")))
        detail = None
    elif value is not None:
        lines.append((t(LABELS["result"]), value))
    if detail:
        label = LABELS["condition"] if step["kind"] == "branch" else LABELS["detail"]
        lines.append((t(label), detail))
    if branch:
        lines.append((t(LABELS["went"]), branch))
    return lines
