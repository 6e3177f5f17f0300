"""Write the JSON Schemas of flow and scenario files that the package ships.

Both are built from the declarations the loaders read
(``ivr.flow.json_schema``, ``ivr.sim.scenario_schema``), so they follow
every new node kind or field; the files are kept in
``ivr/flow/schema/`` for editors, and ``tests/test_json_schema.py`` fails
when they differ from what is built now.

    python tools/write_schemas.py            # print both
    python tools/write_schemas.py --write    # rewrite the files
    python tools/write_schemas.py --check    # exit 1 when a file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.flow.json_schema import flow_schema  # noqa: E402 - after the path is set
from ivr.sim.scenario_schema import scenario_schema  # noqa: E402

FOLDER = ROOT / "ivr" / "flow" / "schema"


def rendered() -> dict[Path, str]:
    """Each schema file and the text it must hold."""
    return {FOLDER / "flow.schema.json": _dump(flow_schema()),
            FOLDER / "scenario.schema.json": _dump(scenario_schema())}


def _dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the schema files")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        elif args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.relative_to(ROOT).as_posix())
        else:
            sys.stdout.write(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python tools/write_schemas.py --write")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
