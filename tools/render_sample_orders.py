"""Regenerate ``ivr/flow/sample_orders.py`` from the demo orders.

The flow loader rehearses every prompt on the demo orders, but the flow
package sits below the look-ups and cannot import them: it keeps a copy,
written by this tool from :func:`ivr.lookups.samples.rehearsal_orders`.
Run it after changing the demo orders or what a look-up returns:

    python tools/render_sample_orders.py --write    # rewrite the copy
    python tools/render_sample_orders.py --check    # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import pprint
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.lookups.samples import rehearsal_orders  # noqa: E402 - after the path is set

TARGET = ROOT / "ivr" / "flow" / "sample_orders.py"
HEADER = '''"""The demo orders as look-ups return them on the sample day (generated).

Written by ``tools/render_sample_orders.py --write`` from
:func:`ivr.lookups.samples.rehearsal_orders`; do not edit by hand.  The
flow loader rehearses every prompt on them (:mod:`ivr.flow.sample_calls`).
"""

'''


def render() -> str:
    """The module's text."""
    orders = pprint.pformat(rehearsal_orders(), width=100, sort_dicts=False)
    return f"{HEADER}SAMPLE_ORDERS: list[dict] = {orders}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite ivr/flow/sample_orders.py")
    group.add_argument("--check", action="store_true", help="exit 1 when it is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        TARGET.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        return int(not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
