"""The commands' help and click's own words in the operator's language.

The help of ``ivr-sim`` and ``ivr-report`` is written in English in the
code (docstrings, ``help=`` of the options, epilogs), fixed when the
modules are imported, before ``--lang`` or the environment is read.  So it
is translated when it is shown: :class:`OperatorGroup` and
:class:`OperatorCommand` put every text of their help through
:func:`ivr.i18n._` while ``--help`` writes it, and put the English back
afterwards.  ``tools/update_catalog.py`` collects these texts from the
commands themselves (:func:`help_texts`) into ``ivr.po``, as they are not
marked with ``_`` in the code.

Click's own words (``Usage:``, ``Options``, ``Show this message and
exit.``, ``No such option``…) are marked with the standard library's
gettext in each of click's modules, which reads compiled catalogues of
the process-wide ``messages`` domain and never ``--lang``.
:func:`speak_click_in_operator_language` has those modules look them up
in ``ivr/locale/<lang>/LC_MESSAGES/click.po`` first, in the operator's
language; what that catalogue does not hold still goes to the standard
library, so English stays click's own.
"""

from __future__ import annotations

import gettext
import importlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ivr.i18n import _, current_language, translations, use_language

__all__ = ["OperatorCommand", "OperatorGroup", "help_texts", "language_chosen",
           "speak_click_in_operator_language"]

#: The catalogue of click's own words, beside ours.
CLICK_DOMAIN = "click"
#: The modules of click that mark words with gettext (its Windows console aside).
CLICK_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "types", "termui",
                 "shell_completion", "utils", "_termui_impl")


def help_texts(command: click.Command) -> Iterator[str]:
    """Every text of ``command``'s help and of its subcommands', as the
    catalogue holds them (a docstring without its indentation)."""
    for text in (command.help, command.short_help, command.epilog):
        if text:
            yield inspect.cleandoc(text)
    for param in command.params:
        text = getattr(param, "help", None)  # an argument has none
        if text:
            yield text
    for subcommand in getattr(command, "commands", {}).values():
        yield from help_texts(subcommand)


#: The help of click's ``--help``, in English.
HELP_OPTION_HELP = "Show this message and exit."


def _translated(text: str) -> str:
    """``text`` in the operator's language: ours, else one of click's own."""
    text = inspect.cleandoc(text)
    translated = _(text)
    return translated if translated != text else _click_gettext(text)


@contextmanager
def _help_in_operator_language(command: click.Command, ctx: click.Context) -> Iterator[None]:
    """``command``'s texts, its options' and (listed by a group) its
    subcommands' short help in the operator's language, for as long as
    its help is being written; the English put back after."""
    saved: list[tuple[object, str, object]] = []

    def swap(holder: object, attribute: str) -> None:
        value = getattr(holder, attribute, None)
        if value:
            saved.append((holder, attribute, value))
            setattr(holder, attribute, _translated(value))

    for attribute in ("help", "short_help", "epilog"):
        swap(command, attribute)
    help_option = command.get_help_option(ctx)
    for param in command.get_params(ctx):
        if param is help_option:
            # Click words it once, in the language of the moment it is made.
            saved.append((param, "help", HELP_OPTION_HELP))
            param.help = _translated(HELP_OPTION_HELP)
        else:
            swap(param, "help")
    for subcommand in getattr(command, "commands", {}).values():
        swap(subcommand, "help")
        swap(subcommand, "short_help")
    try:
        yield
    finally:
        for holder, attribute, value in reversed(saved):
            setattr(holder, attribute, value)


class OperatorCommand(click.Command):
    """A command whose ``--help`` is in the operator's language."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _help_in_operator_language(self, ctx):
            super().format_help(ctx, formatter)


class OperatorGroup(OperatorCommand, click.Group):
    """A group whose ``--help`` is in the operator's language, and whose
    commands (``@group.command()``) are :class:`OperatorCommand`."""

    command_class = OperatorCommand


def language_chosen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The callback of an eager ``--lang`` option: speak ``value`` from
    now on, so that ``--lang fr --help`` is in French.  Without a value a
    command speaks the environment's language, a subcommand its group's."""
    if value is not None or ctx.parent is None:
        use_language(value)
    return value


def _click_gettext(message: str) -> str:
    translated = translations(current_language(), CLICK_DOMAIN).gettext(message)
    return translated if translated != message else gettext.gettext(message)


def _click_ngettext(singular: str, plural: str, count: int) -> str:
    translated = translations(current_language(), CLICK_DOMAIN).ngettext(singular, plural, count)
    if translated in (singular, plural):
        return gettext.ngettext(singular, plural, count)
    return translated


def speak_click_in_operator_language() -> None:
    """Have click's own words follow the operator's language, from our
    ``click`` catalogue (once per process; English is unchanged)."""
    for name in CLICK_MODULES:
        module = importlib.import_module(f"click.{name}")
        # Only the standard library's functions are replaced: a module
        # already done, or one click changed, is left as it is.
        if getattr(module, "_", None) is gettext.gettext:
            setattr(module, "_", _click_gettext)  # noqa: B010 - a module's own name
        if getattr(module, "ngettext", None) is gettext.ngettext:
            setattr(module, "ngettext", _click_ngettext)  # noqa: B010
