"""Say why a text is not YAML in words an operator understands, at the real cause.

PyYAML reports where its parser gave up, in the parser's words
("mapping values are not allowed here", "expected <block end>, but found
'<block mapping start>'"), often a line after the mistake.  For the common
mistakes (a tab, a colon in text, a bad indent, a quote or bracket left
open) :func:`explain` names the mistake, says how to fix it and points at
the line and column that cause it; anything else keeps PyYAML's words.

Every message is one sentence from :data:`MESSAGES`, filled with named
values, so that it can be translated whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivr.i18n import N_, _

#: The messages of this module, by problem code.
MESSAGES = {
    "yaml-tab": N_("a tab is used for indentation; YAML needs spaces: replace the tab with two spaces"),
    "yaml-colon": N_("the text of {key!r} contains ': ', which YAML reads as a new field: put the "
                  "whole text in quotes, e.g. {key}: \"{text}\""),
    "yaml-indent-under": N_("{key!r} is indented by {found} spaces but the lines after it by {wanted}: "
                         "indent it by {wanted} spaces like them"),
    "yaml-indent-over": N_("{key!r} is indented by {found} spaces, deeper than the line above can take: "
                        "line it up with {sibling!r} ({wanted} spaces)"),
    "yaml-indent-lost": N_("{key!r} is indented by {found} spaces, which lines it up with no field above "
                        "(they are at {levels} spaces): line it up with the fields of its mapping"),
    "yaml-unclosed-quote": N_("the text opened with {quote} here is never closed: add the closing "
                           "{quote} at the end of the text"),
    "yaml-unclosed-bracket": N_("the list opened with {opening!r} here is never closed: add {closing!r} "
                                "after its last item (and a comma between items)"),
    "yaml-unclosed-brace": N_("the mapping opened with {opening!r} here is never closed: add {closing!r} "
                              "after its last item (and a comma between items)"),
    "yaml-syntax": N_("this is not valid YAML: {detail}"),
}

_FLOW = {"flow sequence": ("yaml-unclosed-bracket", "[", "]"), "flow mapping": ("yaml-unclosed-brace", "{", "}")}
#: ``key: text`` at the start of a line, the key plain or quoted.
_KEY_VALUE = re.compile(r"""^(?P<indent>\s*)(?:-\s+)?(?P<key>"[^"]*"|'[^']*'|[^\s#'"][^:#]*?):\s+(?P<value>\S.*)$""")
#: A line that opens a quoted text after ``key:`` or ``-``.
_OPENS_QUOTE = re.compile(r"""^\s*(?:-\s+|(?:"[^"]*"|'[^']*'|[^\s#'"][^:#]*?):\s+)(?P<quote>["'])""")


@dataclass(frozen=True)
class Explanation:
    """What is wrong, at which 1-based line and column (every one is a
    ``yaml-syntax`` problem)."""

    message: str
    line: int
    column: int
    #: How to read on past it: the 1-based line to re-indent and the
    #: indentation it most likely meant (None: nothing past it can be read).
    reindent: tuple[int, int] | None = None


def repaired(source: str, found: Explanation) -> str | None:
    """``source`` with the line ``found`` blames re-indented as it most
    likely meant, so the lines after it can be read and checked too; None
    when the mistake is not one of indentation."""
    if found.reindent is None:
        return None
    number, indent = found.reindent
    lines = source.splitlines(keepends=True)
    if not 0 < number <= len(lines):
        return None
    lines[number - 1] = " " * indent + lines[number - 1].lstrip(" \t")
    return "".join(lines)


def explain(source: str, error) -> Explanation:
    """The plain-words explanation of ``error`` (a ``yaml.MarkedYAMLError``)
    raised while reading ``source``."""
    lines = source.splitlines()
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line, mark.column) if mark else (0, 0)
    problem, context = error.problem or "", error.context or ""
    for finder in (_tab, _unclosed_quote, _unclosed_bracket, _colon_in_text, _bad_indent):
        found = finder(lines, line, column, problem, context, error)
        if found is not None:
            return found
    detail = f"{problem} ({context})" if context else problem or str(error)
    return Explanation(_(MESSAGES["yaml-syntax"]).format(detail=detail), line + 1, column + 1)


def _significant(lines, index: int) -> bool:
    text = lines[index].strip() if 0 <= index < len(lines) else ""
    return bool(text) and not text.startswith("#")


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _key(text: str) -> str:
    return text.strip().lstrip("- ").split(":", 1)[0].strip().strip("'\"")


def _tab(lines, line, column, problem, context, error):
    if "'\\t'" not in problem:
        return None
    # The first line indented with a tab is the cause (the parser may stop later).
    for index, text in enumerate(lines[: line + 1]):
        head = text[: len(text) - len(text.lstrip(" \t"))]
        if "\t" in head:
            return Explanation(_(MESSAGES["yaml-tab"]), index + 1, head.index("\t") + 1,
                               (index + 1, _meant_indent(lines, index)))
    return Explanation(_(MESSAGES["yaml-tab"]), line + 1, column + 1)


def _meant_indent(lines, index: int) -> int:
    """The indentation a line indented with a tab most likely meant: that
    of the line above, one level deeper when the line above opens a block."""
    before = _previous(lines, index)
    if before is None:
        return 0
    above = lines[before].rstrip()
    return _indent(above) + (2 if above.endswith(":") else 0)


def _unclosed_quote(lines, line, column, problem, context, error):
    if "quoted scalar" in context and error.context_mark is not None:
        mark = error.context_mark
        quote = lines[mark.line][mark.column] if mark.line < len(lines) else '"'
        return _quote_at(quote, mark.line, mark.column)
    # A quote left open mid-file ends at the next quote, lines later: the
    # parser then stops there.  The cause is the last line before it that
    # opens a quote without closing it.
    for index in range(min(line, len(lines) - 1), -1, -1):
        opened = _OPENS_QUOTE.match(lines[index])
        if opened and _left_open(lines[index][opened.start("quote"):]):
            return _quote_at(opened.group("quote"), index, opened.start("quote"))
    return None


def _left_open(text: str) -> bool:
    """Whether the quoted text starting ``text`` is not closed on its line."""
    quote, rest = text[0], text[1:]
    if quote == "'":
        return rest.replace("''", "").count("'") == 0
    return re.sub(r'\\.', "", rest).count('"') == 0


def _quote_at(quote, index, col):
    message = _(MESSAGES["yaml-unclosed-quote"]).format(quote=quote)
    return Explanation(message, index + 1, col + 1)


def _unclosed_bracket(lines, line, column, problem, context, error):
    if "flow" not in context:
        return None
    mark = error.context_mark
    opener = None
    if "flow node" in context or mark is None:
        opener = _last_open_bracket(lines, line, column)
    elif mark.line < len(lines) and mark.column < len(lines[mark.line]):
        opener = (mark.line, mark.column)
    if opener is None:
        return None
    kind = "flow sequence" if lines[opener[0]][opener[1]] == "[" else "flow mapping"
    which, opening, closing = _FLOW[kind]
    message = _(MESSAGES[which]).format(opening=opening, closing=closing)
    return Explanation(message, opener[0] + 1, opener[1] + 1)


def _last_open_bracket(lines, line, column):
    """(line, column) of the last ``[`` or ``{`` not closed before the
    parser stopped at ``line``, ``column`` (quotes and comments skipped)."""
    stack: list = []
    for index, text in enumerate(lines[: line + 1]):
        quote = None
        for col, char in enumerate(text if index < line else text[:column + 1]):
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"" and (col == 0 or text[col - 1] in " [{,:"):
                quote = char
            elif char == "#" and (col == 0 or text[col - 1] == " "):
                break
            elif char in "[{":
                stack.append((index, col))
            elif char in "]}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _colon_in_text(lines, line, column, problem, context, error):
    if "mapping values are not allowed" not in problem or line >= len(lines):
        return None
    found = _KEY_VALUE.match(lines[line])
    if not found or column <= found.start("value"):
        return None
    key = found.group("key").strip("'\"")
    text = found.group("value").split(" #", 1)[0].rstrip()
    message = _(MESSAGES["yaml-colon"]).format(key=key, text=text.replace('"', '\\"'))
    return Explanation(message, line + 1, column + 1)


def _previous(lines, index: int) -> int | None:
    index -= 1
    while index >= 0 and not _significant(lines, index):
        index -= 1
    return index if index >= 0 else None


def _next(lines, index: int) -> int | None:
    index += 1
    while index < len(lines) and not _significant(lines, index):
        index += 1
    return index if index < len(lines) else None


def _bad_indent(lines, line, column, problem, context, error):
    if line >= len(lines) or not (
            "mapping values are not allowed" in problem or "expected <block end>" in problem):
        return None
    here = _indent(lines[line])
    before = _previous(lines, line)
    if before is None:
        return None
    if "mapping values are not allowed" in problem and here > _indent(lines[before]):
        # A field deeper than the line above, which already has its value.
        after = _next(lines, line)
        if after is not None and _indent(lines[after]) == here:
            # The lines after agree with it: the line above is the odd one.
            message = _(MESSAGES["yaml-indent-under"]).format(
                key=_key(lines[before]), found=_indent(lines[before]), wanted=here)
            return Explanation(message, before + 1, _indent(lines[before]) + 1, (before + 1, here))
        message = _(MESSAGES["yaml-indent-over"]).format(
            key=_key(lines[line]), found=here, sibling=_key(lines[before]),
            wanted=_indent(lines[before]))
        return Explanation(message, line + 1, here + 1, (line + 1, _indent(lines[before])))
    return _lost(lines, line, here)


def _lost(lines, line, here):
    """A line whose indentation matches no open mapping above it."""
    levels, index = [], line
    while (index := _previous(lines, index)) is not None:
        indent = _indent(lines[index])
        if not levels or indent < levels[-1]:
            if levels and levels[-1] > here > indent and _seen_at(lines, index, here):
                # Lines at its depth came before this shallower one: this
                # one broke the block, the line reported only follows it.
                message = _(MESSAGES["yaml-indent-under"]).format(
                    key=_key(lines[index]), found=indent, wanted=here)
                return Explanation(message, index + 1, indent + 1)
            levels.append(indent)
        if indent == 0:
            break
    shown = ", ".join(str(level) for level in sorted(set(levels)))
    message = _(MESSAGES["yaml-indent-lost"]).format(key=_key(lines[line]), found=here, levels=shown)
    return Explanation(message, line + 1, here + 1)


def _seen_at(lines, index: int, indent: int) -> bool:
    """Whether the block holding line ``index`` has a line at ``indent`` before it."""
    own = _indent(lines[index])
    while (index := _previous(lines, index)) is not None:
        level = _indent(lines[index])
        if level == indent:
            return True
        if level < min(own, indent):
            return False
    return False
