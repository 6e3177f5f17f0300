"""Keep the operator-language catalogues in step with the code.

Extracts every message marked with ``_``, ``N_``, ``ngettext`` (and a
:class:`ivr.i18n.Formats`' ``gettext`` / ``ngettext``) from ``ivr/`` and
merges them into ``ivr/locale/<lang>/LC_MESSAGES/ivr.po``: new messages
are added untranslated, translations of messages still in the code are
kept, messages no longer in the code are dropped.

    python tools/update_catalog.py            # exit 1 when a catalogue is behind
    python tools/update_catalog.py --write    # update the catalogues
    python tools/update_catalog.py --missing  # list untranslated messages
"""

from __future__ import annotations

import argparse
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


def extracted() -> Catalog:
    """Every marked message of the package, with where it is used."""
    template = Catalog(project="ivr-engine", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
            PACKAGE, keywords=KEYWORDS, comment_tags=("Translators:",)):
        template.add(message, locations=[(f"ivr/{filename}", lineno)],
                     auto_comments=comments, context=context)
    return template


def merged(lang: str, template: Catalog) -> Catalog:
    """The catalogue of ``lang`` updated to ``template``, translations kept."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if po.is_file():
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=lang)
    else:
        catalog = Catalog(locale=lang, project="ivr-engine", domain=DOMAIN, fuzzy=False,
                          copyright_holder="the ivr-engine authors",
                          last_translator="the ivr-engine authors",
                          language_team=f"ivr-engine ({lang})")
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
    template = extracted()
    behind = False
    for lang in LANGUAGES:
        po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        catalog = merged(lang, template)
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
