"""Render every prompt in every case it can meet, for people to read.

Each template under ``prompts/<lang>/`` is rendered against the cases a
call can bring it (each order status, delivery dates today, tomorrow,
this week and next week, the line closed before a weekend, a public
holiday or on 24 December, a withheld caller, each callback slot...), one
line per rendering.  The result is kept in ``tests/golden/prompts.txt``
and ``tests/test_prompt_golden.py`` fails when a rendering changes, so a
change to what callers hear shows in review.

    python tools/render_prompts.py            # print every rendering
    python tools/render_prompts.py --write    # rewrite tests/golden/prompts.txt
    python tools/render_prompts.py --check    # exit 1 when the golden file differs

A template nobody listed cases for is rendered once with the usual
context (a caller, an order in transit...); one that fails says why on
its line instead of stopping the others.
"""

from __future__ import annotations

import argparse
import difflib
import html
import itertools
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.flow.loader import load_flow  # noqa: E402 - after the path is set
from ivr.flow.prompts import SERVER_PROMPTS, PromptError, PromptLibrary  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "prompts.txt"
PARIS = ZoneInfo("Europe/Paris")
#: "Now" for every case but the closed-hours ones: Tuesday 1 December 2026, 10:00.
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
TODAY = NOW.date()

#: The statuses each answer is played for (flows/post_sale.yaml).
STATUS_PROMPTS = {
    "status_preparing": ("preparing",),
    "status_in_transit": ("shipped", "in_transit"),
    "status_out_for_delivery": ("out_for_delivery",),
    "status_delayed_carrier": ("delayed_carrier",),
    "status_delayed_warehouse": ("delayed_warehouse",),
    "status_delivered": ("delivered",),
    "status_lost": ("lost",),
    "status_cancelled": ("cancelled",),
    "status_returned": ("returned",),
}
ALL_STATUSES = ("preparing", "shipped", "in_transit", "out_for_delivery", "delivered",
                "delayed_carrier", "delayed_warehouse", "lost", "cancelled", "returned")
#: When a parcel should arrive, from today (Tuesday 1 December).
DELIVERY_DAYS = (("today", 0), ("tomorrow", 1), ("this week, Friday", 3),
                 ("this week, Saturday", 4), ("next week, Tuesday 8", 7), ("in three weeks", 21))
#: When the line is closed, and what callers are told about its opening.
CLOSED_AT = (
    ("early on a weekday", datetime(2026, 12, 1, 7, 30, tzinfo=PARIS)),
    ("a weekday evening", datetime(2026, 12, 1, 19, 0, tzinfo=PARIS)),
    ("Friday evening, before a weekend", datetime(2026, 12, 4, 19, 0, tzinfo=PARIS)),
    ("Saturday afternoon, before Sunday", datetime(2026, 12, 5, 13, 0, tzinfo=PARIS)),
    ("the eve of a public holiday (30 April)", datetime(2026, 4, 30, 19, 0, tzinfo=PARIS)),
    ("before 14 July, a Tuesday", datetime(2026, 7, 13, 19, 0, tzinfo=PARIS)),
    ("24 December after 16:00", datetime(2026, 12, 24, 17, 0, tzinfo=PARIS)),
    ("31 December evening", datetime(2026, 12, 31, 18, 30, tzinfo=PARIS)),
)
CALLERS = (("a French mobile", "+33612345678", "FR"), ("an American number", "+14155550100", "US"),
           ("a British number", "+447700900123", "GB"))
CALLBACK_NUMBERS = (("their own French number", "+33612345678"),
                    ("their own American number", "+14155550100"),
                    ("a number typed by a withheld caller", "0612345678"))
SLOTS = ("morning", "afternoon", "asap")
#: A variable a case takes out of the context (the call never set it).
UNSET = object()


def order(status: str = "in_transit", **fields) -> dict:
    """An order as a look-up gives it to the prompts (ivr.lookups.embedded.order_dict)."""
    base = {
        "number": "100234", "status": status, "carrier": "colissimo", "carrier_name": "Colissimo",
        "tracking_number": "6A12345678901", "tracking_url": "https://suivi.example/6A12345678901",
        "ordered_on": _day(-4), "shipped_on": None, "delivered_on": None,
        "expected_on": _day(1), "items": 2, "total": "42.50", "currency": "EUR",
    }
    if status in ("shipped", "in_transit", "out_for_delivery", "delayed_carrier", "delivered", "lost"):
        base["shipped_on"] = _day(-1)
    if status in ("delivered", "lost", "cancelled", "returned"):
        base["expected_on"] = None
    return {**base, **fields}


def _day(offset: int | None) -> str | None:
    return None if offset is None else (TODAY + timedelta(days=offset)).isoformat()


# --- the cases each prompt can meet ---------------------------------------------------


def status_cases(status: str) -> list[tuple[str, dict]]:
    """The orders of one status that callers ask about."""
    if status == "delivered":
        cases = [(f"delivered {label}", order(status, delivered_on=_day(offset)))
                 for label, offset in (("today", 0), ("yesterday", -1), ("on Saturday", -3),
                                       ("twelve days ago", -12), ("on an unknown day", None))]
        return cases + [("delivered yesterday, no carrier", order(status, delivered_on=_day(-1),
                                                                   carrier_name=None))]
    if status in ("lost", "cancelled", "returned"):
        return [(status, order(status)),
                (f"{status}, no carrier, no amount", order(status, carrier_name=None, total=None))]
    cases = [(f"{status}, delivery {label}", order(status, expected_on=_day(offset)))
             for label, offset in DELIVERY_DAYS]
    cases.append((f"{status}, no delivery date", order(status, expected_on=None)))
    cases.append((f"{status}, no carrier, no tracking number",
                  order(status, carrier_name=None, tracking_number=None, tracking_url=None)))
    if status == "shipped":
        cases.append(("shipped three days ago", order(status, shipped_on=_day(-3))))
        cases.append(("shipped, day unknown", order(status, shipped_on=None)))
    return cases


def anything_else_cases() -> list[tuple[str, dict]]:
    """The last menu offers the tracking link by text only where it helps."""
    cases = [(f"after {status}", {"order": order(status)}) for status in ALL_STATUSES]
    cases.append(("after the tracking text was tried", {"order": order(), "tracking_sms_tried": True}))
    cases.append(("a withheld caller (no country)", {"order": order(), "country": None, "caller": ""}))
    cases.append(("no order looked up", {"order": UNSET}))
    return cases


def closed_cases(library_flow) -> list[tuple[str, dict]]:
    """Closed hours, with the opening the flow's calendar gives."""
    calendar = next(iter(library_flow.calendars.values()))
    cases = []
    for label, moment in CLOSED_AT:
        opening = calendar.next_opening(moment)
        cases.append((f"closed {label}", {
            "now": moment, "today": moment.date(), "hour": moment.hour,
            "weekday": moment.isoweekday(), "opens_at": opening.isoformat() if opening else None}))
    cases.append(("closed, no opening known", {"opens_at": None}))
    return cases


def cases_for(name: str, variables: set[str], flow) -> list[tuple[str, dict]]:
    """Every case ``name`` can meet: one family per thing it reads, combined."""
    if name in STATUS_PROMPTS:
        orders = [(label, {"order": o}) for status in STATUS_PROMPTS[name]
                  for label, o in status_cases(status)]
        if "proactive" not in variables:
            return orders
        # Said before any menu (the caller's one order on its way), or asked for.
        return orders + [(f"{label}, answered first", {**values, "proactive": True})
                         for label, values in orders]
    if name == "anything_else":
        return anything_else_cases()
    if name == "sms_tracking":
        return [("on its way, delivery next week", {"order": order(expected_on=_day(7))}),
                ("out for delivery today", {"order": order("out_for_delivery", expected_on=_day(0))}),
                ("no carrier, no delivery date", {"order": order(carrier_name=None, expected_on=None)})]
    families = []
    if "opens_at" in variables:
        families.append(closed_cases(flow))
    if "caller" in variables:
        families.append([(f"caller: {label}", {"caller": number, "country": country})
                         for label, number, country in CALLERS])
    if "callback_number" in variables:
        families.append([(f"to call back at {label}", {"callback_number": number})
                         for label, number in CALLBACK_NUMBERS])
    if "slot" in variables:
        families.append([(f"slot {slot}", {"slot": slot}) for slot in SLOTS])
    if "hour" in variables and "opens_at" not in variables:
        families.append([("10:00", {"hour": 10}), ("18:00", {"hour": 18}), ("21:00", {"hour": 21})])
    if "count" in variables:
        families.append([(f"{count} orders", {"count": count}) for count in (2, 5)])
    if "order" in variables and name == "confirm_order":
        families.append([("ordered four days ago", {"order": order()}),
                         ("ordered on the 1st", {"order": order(ordered_on="2026-11-01")}),
                         ("order date unknown", {"order": order(ordered_on=None)})])
    if not families:
        return [("", {})]
    return [(", ".join(label for label, _ in combo if label),
             {k: v for _, values in combo for k, v in values.items()})
            for combo in itertools.product(*families)]


def base_context(lang: str) -> dict:
    """What the engine gives every prompt (ivr.engine's context), for a
    French caller with an order in transit, on Tuesday 1 December at 10:00."""
    return {
        "caller": "+33612345678", "called": "+33100000000", "call_id": "CA0", "country": "FR",
        "lang": lang, "now": NOW, "today": TODAY, "hour": NOW.hour, "weekday": NOW.isoweekday(),
        "attempt": 1, "digits": "", "speech": "", "reason": None, "opens_at": None,
        "order": order(), "order_number": "100234", "count": 3,
        "callback_number": "+33612345678", "slot": "morning",
    }


def confirm_choice_cases(flow, lang: str) -> list[tuple[str, dict]]:
    """A close call on each choice of each menu, named by its label (or,
    without one, by its first word), and the escape to a human."""
    cases = []
    for node in flow.nodes.values():
        for choice in node.opts.get("choices", ()) if node.kind == "menu" else ():
            words = list(choice.words.get(lang, ()))
            cases.append((f"{node.name} {choice.key}", {
                "choice_label": choice.label.get(lang), "choice_word": words[0] if words else None}))
    cases.append(("the escape", {"choice_label": flow.escape.label.get(lang),
                                 "choice_word": next(iter(flow.escape.words.get(lang, ())), None)}))
    cases.append(("a choice with no label", {"choice_label": None, "choice_word": "retour"}))
    return cases


def server_cases(name: str) -> list[tuple[str, dict]]:
    """The prompts the server says: only what it gives them."""
    if name == "agent_whisper":
        return [("with the order", {"reason": "Returning an order or its refund", "order": "100234"}),
                ("no order known", {"reason": "Where is my order", "order": ""})]
    return [("", {})]


# --- rendering -------------------------------------------------------------------------


def render_all(prompts_root: Path = ROOT / "prompts",
               flow_path: Path = ROOT / "flows" / "post_sale.yaml") -> str:
    """The golden text: every prompt of every language, in every case."""
    library = PromptLibrary(prompts_root)
    flow = load_flow(flow_path, prompts_root, rehearse=False)  # a failing prompt is shown, not refused
    languages = library.languages()
    names = sorted({p.stem for lang in languages for p in (prompts_root / lang).glob("*.j2")})
    lines = ["# Every prompt in every case it can meet: tools/render_prompts.py --write regenerates this.",
             f"# Cases are seen from {NOW:%A %d %B %Y, %H:%M} (Europe/Paris) unless they say otherwise.", ""]
    for name in names:
        for lang in languages:
            lines.append(f"== {lang}/{name}")
            lines += _renderings(library, lang, name, flow)
            lines.append("")
    return "\n".join(lines)


def _renderings(library: PromptLibrary, lang: str, name: str, flow) -> list[str]:
    if not library.exists(lang, name):
        return ["   MISSING: no template in this language"]
    sms = name == "sms_tracking"  # a text message: plain text, its lines joined by " | "
    try:
        variables = library.variables(lang, name)
    except PromptError as error:
        return [f"   ERROR: {error}"]
    if name in SERVER_PROMPTS:
        cases = [(label, context) for label, context in server_cases(name)]
    elif name == "confirm_choice":
        cases = confirm_choice_cases(flow, lang)
    else:
        # The flow's own variables start as it declares them (vars:).
        start = {**base_context(lang), **dict(flow.variables)}
        cases = [(label, {k: v for k, v in {**start, **changes}.items() if v is not UNSET})
                 for label, changes in cases_for(name, variables, flow)]
    out = []
    for label, context in cases:
        try:
            text = (library.render_text(lang, name, context).replace("\n", " | ") if sms
                    else library.render(lang, name, context))
        except PromptError as error:
            text = f"ERROR: {error.message}"
        out.append(f"[{label}]" if label else "[always]")
        # As heard: entities unescaped ("aujourd'hui"), SSML tags kept.
        out.append(f"   {html.unescape(text)}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN.relative_to(ROOT)}")
    action.add_argument("--check", action="store_true", help="exit 1 when the golden file differs")
    args = parser.parse_args(argv)
    text = render_all() + "\n"
    if args.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
        return 0
    if args.check:
        old = GOLDEN.read_text(encoding="utf-8") if GOLDEN.exists() else ""
        diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), "golden", "now",
                                         lineterm=""))
        print("\n".join(diff) if diff else "the golden file is up to date")
        return 1 if diff else 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
