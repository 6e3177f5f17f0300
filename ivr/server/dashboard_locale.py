"""The dashboard's language and its comparison with the previous period.

A request picks French or English (``?lang=``, else ``Accept-Language``,
else the server's environment); every figure is then written with
:class:`ivr.i18n.Formats` of that language.  Each headline figure is shown
with its change since the period of the same length just before
(▲ up, ▼ down, = unchanged), rates in percentage points.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from babel.dates import format_date
from markupsafe import Markup, escape

from ivr.i18n import N_, Formats, language_from, language_from_env


def format_duration(seconds: float | None) -> str:
    """75.4 -> '1 min 15 s'; None -> '–' (the same in French and English)."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"


#: The figures compared with the previous period, and how their change is written.
COMPARED = {"calls": "count", "deflection_rate": "rate",
            "repeat_adjusted_deflection_rate": "rate", "cost_saved": "money",
            "transfers_answered": "count", "avg_ivr_seconds": "duration"}
OUTCOME_LABELS = {"self_served": N_("Self-served"), "transferred": N_("Transferred"),
                  "abandoned": N_("Abandoned"), "failed": N_("Failed")}
CAUSE_LABELS = {"caller_asked": N_("Caller asked"), "no_input": N_("No input"),
                "no_match": N_("No match"), "not_found": N_("Order not found"),
                "closed": N_("Closed"), "error": N_("Error"), "loop_guard": N_("Loop guard"),
                "policy": N_("Policy (by design)"), "dial_failed": N_("Dial failed"),
                "callback": N_("Callback requested")}


def choose_language(asked: str | None, accept_language: str | None,
                    server_default: str | None = None) -> str:
    """``fr`` or ``en``: the ``lang`` asked in the query when it has a
    catalogue, else the first language of ``Accept-Language`` (by its
    ``q`` weights) that has one, else the server's (its environment's)."""
    chosen = language_from(asked)
    if chosen:
        return chosen
    for candidate in _by_preference(accept_language or ""):
        chosen = language_from(candidate)
        if chosen:
            return chosen
    return language_from(server_default) or language_from_env()


def _by_preference(header: str) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first."""
    weighted = []
    for position, item in enumerate(header.split(",")):
        name, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if name and name != "*" and weight > 0:
            weighted.append((-weight, position, name.strip()))
    return [name for _w, _p, name in sorted(weighted)]


def previous_period(since: date, until: date) -> tuple[date, date]:
    """The period of the same length that ends the day before ``since``."""
    days = (until - since).days + 1
    return since - timedelta(days=days), since - timedelta(days=1)


def changes(current: Mapping, previous: Mapping) -> dict[str, float | None]:
    """Each compared figure's change since the previous period; None when
    either period has no value (a rate of a period without calls)."""
    result: dict[str, float | None] = {}
    for name in COMPARED:
        now, before = current.get(name), previous.get(name)
        result[name] = None if now is None or before is None else float(now) - float(before)
    return result


def change_text(fmt: Formats, name: str, difference: float, currency: str = "EUR") -> str:
    """``▲ 5``, ``▼ 2.5 pts``, ``= 0``: a change written for people in
    ``fmt``'s language; the arrow says which way, the figure how much."""
    size = abs(difference)
    kind = COMPARED[name]
    if kind == "rate":
        amount = fmt.gettext("{points} pts").format(points=fmt.number(size * 100, 1))
    elif kind == "money":
        amount = fmt.money(round(size, 2), currency)
    elif kind == "duration":
        amount = format_duration(size)
    else:
        amount = fmt.number(size)
    rounded = round(size * 1000 if kind == "rate" else size, 1)
    arrow = "=" if rounded == 0 else "▲" if difference > 0 else "▼"
    return f"{arrow} {amount}"


def short_day(fmt: Formats, day: date) -> str:
    """A day on a chart's axis: ``Wed 18 Nov``, ``mer. 18 nov.``."""
    pattern = "EEE d MMM" if fmt.lang == "fr" else "EEE, MMM d"
    return format_date(day, format=pattern, locale=fmt.locale)


def period_text(fmt: Formats, since: date, until: date) -> str:
    """``18 Nov 2026 – 24 Nov 2026`` in ``fmt``'s language; one day alone
    when the period is one day."""
    if since == until:
        return fmt.day(since)
    return fmt.gettext("{first} – {last}").format(first=fmt.day(since), last=fmt.day(until))


def reason_label(fmt: Formats, code: str, descriptions: Mapping) -> str:
    """A contact reason as the flow describes it (its ``reasons:``, in the
    operator's language when the flow gives one per language); its code,
    spaced, when the flow does not describe it."""
    described = descriptions.get(code)
    if isinstance(described, Mapping):
        texts = {str(k).split("-")[0].split("_")[0].lower(): str(v) for k, v in described.items()}
        described = texts.get(fmt.lang) or texts.get("en") or next(iter(texts.values()), None)
    return str(described) if described else code.replace("_", " ")


def sentence(message: str, **parts) -> Markup:
    """A translated sentence with its figures put in: the sentence is
    escaped, each part too unless it is already :class:`Markup` (a figure
    in its ``<span>``)."""
    return escape(message).format(**parts)


def figure(element_id: str, value, shown: str) -> Markup:
    """A figure in a sentence, in a ``<span>`` carrying its raw value."""
    raw = "" if value is None else value
    return Markup('<span id="{}" data-value="{}">{}</span>').format(element_id, raw, shown)


def page_texts(fmt: Formats, view, total: Mapping, previous: tuple[date, date]) -> dict:
    """Every heading, label and sentence of the page in ``fmt``'s language."""
    days = view.query.days
    t = {
        "title": fmt.gettext("IVR dashboard"), "version": fmt.gettext("version"),
        "flow": fmt.gettext("Flow"), "since": fmt.gettext("From"), "until": fmt.gettext("To"),
        "show": fmt.gettext("Show"), "language": fmt.gettext("Language"),
        "period": fmt.ngettext(
            "{period} ({days} day, both included): calls that ended, in the flow's local time",
            "{period} ({days} days, both included): calls that ended, in the flow's local time",
            days).format(period=period_text(fmt, view.query.since, view.query.until),
                         days=fmt.number(days)),
        "no_calls_yet": fmt.gettext("No calls logged yet. Figures appear here once calls have "
                                    "ended."),
        "calls": fmt.gettext("Calls"), "deflection": fmt.gettext("Deflection"),
        "deflection_note": fmt.gettext("self-served ÷ all calls that ended"),
        "repeat_adjusted": fmt.gettext("Repeat-adjusted"),
        "cost_saved": fmt.gettext("Cost saved"), "transfers": fmt.gettext("Transfers"),
        "avg_ivr_time": fmt.gettext("Avg time in IVR"),
        "ivr_time_note": fmt.gettext("until an agent answered, or the call ended"),
        "timeline": fmt.gettext("Deflection by hour") if view.by_hour
        else fmt.gettext("Deflection by day"),
        "outcomes_by_reason": fmt.gettext("Outcomes by reason"),
        "transfer_causes": fmt.gettext("Transfer causes"),
        "providers_heading": fmt.gettext("Calls by provider"),
        "provider": fmt.gettext("Provider"), "self_served": fmt.gettext("Self-served"),
        "transferred": fmt.gettext("Transferred"), "abandoned": fmt.gettext("Abandoned"),
        "unknown_provider": fmt.gettext("(unknown)"), "find_call": fmt.gettext("Find a call"),
        "flow_heading": fmt.gettext("The flow: traffic and drop-off by node"),
        "full_size": fmt.gettext("Full size (scroll sideways)"),
        "graph_note": fmt.gettext("Each box: calls that reached the node and how many left there "
                                  "(hung up or went to a human); the darker, the more callers "
                                  "lost. Hover a box for details."),
        "no_calls_in_period": fmt.gettext("No calls in this period."),
        "cannot_draw": fmt.gettext("Version {version} of {flow} cannot be drawn: it no longer "
                                   "loads.").format(version=(view.version or "")[:12],
                                                    flow=view.flow),
        "where_callers_leave": fmt.gettext("Where callers leave"),
        "nobody_left": fmt.gettext("No caller left the flow early in this period."),
        "worst_headings": [fmt.gettext("Node"), fmt.gettext("Kind"), fmt.gettext("Reached"),
                           fmt.gettext("Hung up"), fmt.gettext("To a human"),
                           fmt.gettext("Dropped"), fmt.gettext("Drop-off")],
        "compared_with": fmt.ngettext(
            "Arrows: change since the previous {days} day ({period}).",
            "Arrows: change since the previous {days} days ({period}).",
            days).format(days=fmt.number(days), period=period_text(fmt, *previous)),
    }
    if total:
        t.update(_figure_texts(fmt, total))
    if view.last_day:
        t["where_calls_are"] = fmt.gettext(
            "No calls ended in this period. The calls of {flow} run from {first} to {last}."
        ).format(flow=view.flow, first=fmt.day(date.fromisoformat(view.first_day)),
                 last=fmt.day(date.fromisoformat(view.last_day)))
        t["show_latest"] = fmt.ngettext("Show the last day with calls",
                                        "Show the last {days} days with calls",
                                        days).format(days=fmt.number(days))
    return t


def _figure_texts(fmt: Formats, total: Mapping) -> dict:
    """The sentences around the headline figures."""
    def count(name: str) -> Markup:
        return figure(name.replace("_", "-"), total[name], fmt.number(total[name]))

    rate = total["queue_abandonment_rate"]
    note = {"abandoned": count("queue_abandoned"), "unanswered": count("transfers_unanswered"),
            "rate": figure("queue-abandonment-rate", rate,
                           "–" if rate is None else fmt.percent(rate))}
    if total["avg_queue_seconds_abandoned"] is None:
        transfers_note = sentence(fmt.gettext(
            "{abandoned} hung up in the queue ({rate}) · {unanswered} not answered"), **note)
    else:
        transfers_note = sentence(fmt.gettext(
            "{abandoned} hung up in the queue ({rate}), after {wait} on average · "
            "{unanswered} not answered"),
            wait=format_duration(total["avg_queue_seconds_abandoned"]), **note)
    return {
        "repeat_note": sentence(fmt.ngettext(
            "{count} self-served caller called back within 24 h",
            "{count} self-served callers called back within 24 h", total["repeat_calls"]),
            count=count("repeat_calls")),
        "cost_note": sentence(fmt.ngettext(
            "{count} deflected call, less IVR minutes", "{count} deflected calls, less IVR minutes",
            total["deflected"]), count=count("deflected")),
        "transfers_answered": sentence(fmt.gettext("{count} answered"),
                                       count=count("transfers_answered")),
        "transfers_note": transfers_note,
        "failed_note": sentence(fmt.ngettext(
            "Also {count} failed call: an internal error put the caller through to a human.",
            "Also {count} failed calls: an internal error put the callers through to a human.",
            total["failed"]), count=figure("failed-calls", total["failed"],
                                          fmt.number(total["failed"]))),
    }


def graph_key(fmt: Formats, heat_colour, not_reached: str) -> list[tuple[str, str, str]]:
    """The flow drawing's key: (fill, border style, text) per item."""
    key = [("#ffffff", "border:3px double #1a7f37", fmt.gettext("resolves the caller's question")),
           ("#ffffff", "border:0;border-top:2px dashed #b35806", fmt.gettext("retries run out")),
           ("#ffffff", "border:0;border-top:2px dotted #2166ac", fmt.gettext("escape to a human"))]
    for rate in (0, 0.25, 0.5, 0.75, 1):
        key.append((heat_colour(rate), "", fmt.gettext("{rate} of callers lost there").format(
            rate=fmt.percent(rate, 0))))
    key.append((not_reached, "", fmt.gettext("not reached")))
    return key


def figures_line(fmt: Formats):
    """What a node's box says under its name, in ``fmt``'s language: how
    many calls reached it, and how many were lost there (two lines, so the
    boxes stay narrow)."""
    def line(row: Mapping | None) -> str:
        if not row or not row["reached"]:
            return fmt.gettext("not reached")
        return "\n".join((
            fmt.ngettext("{count} reached", "{count} reached", row["reached"]).format(
                count=fmt.number(row["reached"])),
            fmt.ngettext("{count} lost ({rate})", "{count} lost ({rate})", row["dropped"]).format(
                count=fmt.number(row["dropped"]), rate=fmt.percent(row["drop_off_rate"] or 0, 0))))
    return line
