"""Numbers read from a provider's request, whichever the provider: a
count (a sequence number, a duration) and a recogniser's confidence.
Anything else than what is expected reads as None, never as an error:
the request's fields were already checked, and a missing figure is not a
reason to refuse a caller's turn."""

from __future__ import annotations

__all__ = ["confidence", "count"]


def count(value: object) -> int | None:
    """A whole number sent as JSON or as ASCII digits (at most nine of
    them: ``str.isdigit`` takes "²"), else None (``-1`` included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value and len(value) <= 9 and value.isascii() and value.isdigit():
        return int(value)
    return None


def confidence(value: object) -> float | None:
    """The recogniser's confidence in 0..1 (a number, or its text), or None
    when it sent none, or nonsense."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None
