"""The flows' own words for their contact reasons, in the operator's
language: what a report prints under a table of reasons.

A flow describes each reason with one text or one per language
(``carrier_delay: {fr-FR: Retard chez le transporteur, en-US: Delayed by
the carrier}``); the text in the operator's language is shown, else the
one in the flow's default language, else the first given.
"""

from __future__ import annotations

from ivr.i18n import current_language, language_from
from ivr.store.sqlite.reads import default_language, flows_with_calls, reasons_of_latest_version

__all__ = ["described", "reason_meanings"]


def described(description, lang: str, default: str | None = None) -> str | None:
    """The text of one reason's ``description`` (a text, or ``{language:
    text}``) for the operator language ``lang`` (``fr``, ``en``), falling
    back to the ``default`` language (``fr-FR``), then to the first text."""
    if isinstance(description, str):
        return description
    if not isinstance(description, dict):
        return None
    texts = {str(key): text for key, text in description.items() if isinstance(text, str)}
    for key, text in texts.items():
        if language_from(key) == lang:
            return text
    if default in texts:
        return texts[default]
    return next(iter(texts.values()), None)


def reason_meanings(db, flow: str | None = None, version: str | None = None) -> dict[str, str]:
    """``{reason: text}`` of ``flow`` (every flow with calls when None; the
    one with the most calls describes a reason first), in the current
    operator language."""
    lang = current_language()
    meanings: dict[str, str] = {}
    for name in [flow] if flow else flows_with_calls(db):
        default = default_language(db, name, version)
        for reason, description in reasons_of_latest_version(db, name, version).items():
            text = described(description, lang, default)
            if text:
                meanings.setdefault(str(reason), text)
    return meanings
