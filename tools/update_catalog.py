"""Keep the operator-language catalogues in step with the code.

Extracts every message marked with ``_``, ``N_``, ``ngettext`` (and a
:class:`ivr.i18n.Formats`' ``gettext`` / ``ngettext``) from ``ivr/``, and
the help of the commands (``ivr-sim``, ``ivr-report``, ``ivr-serve``'s
options: docstrings and ``help=`` texts, which are not marked), and
merges them into ``ivr/locale/<lang>/LC_MESSAGES/ivr.po``: new messages
are added untranslated, translations of messages still in the code are
kept, messages no longer in the code are dropped.

Click's own words (``Usage:``, ``Show this message and exit.``…) are
extracted from the installed click into ``click.po`` beside it; there a
message click no longer has is kept, so the catalogue serves older
versions of click too.

    python tools/update_catalog.py            # exit 1 when a catalogue is behind
    python tools/update_catalog.py --write    # update the catalogues
    python tools/update_catalog.py --missing  # list untranslated messages
"""

from __future__ import annotations

import argparse
import os
import sys
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ivr"
LOCALE_DIR = PACKAGE / "locale"
DOMAIN = "ivr"
LANGUAGES = ("fr",)
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}


CLICK_DOMAIN = "click"


def extracted() -> Catalog:
    """Every marked message of the package, with where it is used, and
    the commands' help."""
    template = Catalog(project="ivr-engine", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
            PACKAGE, keywords=KEYWORDS, comment_tags=("Translators:",)):
        template.add(message, locations=[(f"ivr/{filename}", lineno)],
                     auto_comments=comments, context=context)
    clicks = {message.id for message in click_extracted() if message.id}
    for where, text in help_texts():
        if text not in clicks:  # click's own --version help: in click.po
            template.add(text, locations=[(where, 0)])
    return template


def help_texts():
    """(command, text) for every text of the commands' help, in English."""
    sys.path.insert(0, str(ROOT))
    os.environ["LANGUAGE"] = "en"  # the texts as the code writes them
    from ivr.click_i18n import help_texts as texts_of
    from ivr.reports.cli import main as report
    from ivr.server.options import SERVE_OPTIONS
    from ivr.sim.cli import main as sim

    yield from (("ivr-sim", text) for text in texts_of(sim))
    yield from (("ivr-report", text) for text in texts_of(report))
    yield from (("ivr-serve", option.help) for option in SERVE_OPTIONS)


def click_extracted() -> Catalog:
    """Every message click marks for translation."""
    import click

    template = Catalog(project="click", domain=CLICK_DOMAIN)
    folder = Path(click.__file__).parent
    for filename, lineno, message, _comments, context in extract_from_dir(
            folder, keywords={"_": None, "ngettext": (1, 2)}):
        template.add(message, locations=[(f"click/{filename}", lineno)], context=context)
    return template


def merged(lang: str, template: Catalog, domain: str = DOMAIN) -> Catalog:
    """The catalogue of ``lang`` updated to ``template``, translations kept
    (click's: its messages no longer in click kept too)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    if po.is_file():
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=lang)
    else:
        catalog = Catalog(locale=lang, project="ivr-engine", domain=domain, fuzzy=False,
                          copyright_holder="the ivr-engine authors",
                          last_translator="the ivr-engine authors",
                          language_team=f"ivr-engine ({lang})")
    if domain == CLICK_DOMAIN:
        for message in template:
            if message.id and message.id not in catalog:
                catalog.add(message.id, context=message.context)
        return catalog
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    out = BytesIO()
    # No source locations: they would change with every edit of the code
    # and make the catalogue look behind when no message changed.
    write_po(out, catalog, width=100, omit_header=False, sort_output=True,
             include_previous=False, no_location=True)
    return _stable(out.getvalue())


def _stable(text: bytes) -> bytes:
    # The header's creation and revision dates change on every run.
    return b"\n".join(line for line in text.split(b"\n")
                      if not line.startswith((b'"POT-Creation-Date:', b'"PO-Revision-Date:')))


def untranslated(catalog: Catalog) -> list[str]:
    return [str(message.id) for message in catalog
            if message.id and not (message.string if not message.pluralizable
                                   else all(message.string))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update the catalogues")
    parser.add_argument("--missing", action="store_true", help="list untranslated messages")
    args = parser.parse_args(argv)
    templates = {DOMAIN: extracted(), CLICK_DOMAIN: click_extracted()}
    behind = False
    for lang, domain in [(lang, domain) for lang in LANGUAGES for domain in templates]:
        po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
        catalog = merged(lang, templates[domain], domain)
        text = po_bytes(catalog)
        current = _stable(po.read_bytes()) if po.is_file() else b""
        if args.write:
            po.parent.mkdir(parents=True, exist_ok=True)
            po.write_bytes(text)
        elif text != current:
            print(f"{po.relative_to(ROOT)} is behind the code: "
                  "run python tools/update_catalog.py --write", file=sys.stderr)
            behind = True
        if args.missing:
            for message in untranslated(catalog):
                print(f"{lang}: {message}")
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())
