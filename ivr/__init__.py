"""An IVR call-flow engine: YAML flows, Jinja2 prompts, a pure engine.

The public surface: load a flow file (checked, prompts rehearsed) or only
check it, and play one event of a call with :func:`step`::

    from ivr import load_flow, step
    flow = load_flow("flows/post_sale.yaml", "prompts")
    state, actions, node_events = step(flow, None, {"type": "start", "now": now, ...})

Everything else lives in the subpackages: ``flow``, ``engine``,
``providers``, ``store``, ``lookups``, ``server``, ``reports`` and ``sim``.

The names are imported when first used, not with the package: a process
that needs none of them (``ivr-report`` lowering its priority before its
imports, see :mod:`ivr.reports.launch`) does not pay for the engine's.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivr.engine.step import step
    from ivr.flow.loader import check_flow, flow_from_source, load_flow
    from ivr.flow.model import Flow
    from ivr.flow.problems import FlowError, Problem

__all__ = ["Flow", "FlowError", "Problem", "check_flow", "flow_from_source", "load_flow", "step"]

#: Where each public name is defined.
_HOMES = {"step": "ivr.engine.step", "check_flow": "ivr.flow.loader",
          "flow_from_source": "ivr.flow.loader", "load_flow": "ivr.flow.loader",
          "Flow": "ivr.flow.model", "FlowError": "ivr.flow.problems", "Problem": "ivr.flow.problems"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ivr' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value  # once: the next use finds it here
    return value
