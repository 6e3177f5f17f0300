"""URLs a provider's document carries."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit


def with_query(url: str | None, params: tuple[tuple[str, str], ...]) -> str | None:
    """``url`` with ``params`` (a transfer's reason and order for the agent)
    added to its query string; without a URL the params have nowhere to go."""
    if url is None or not params:
        return url
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))
