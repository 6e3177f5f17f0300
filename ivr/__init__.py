"""An IVR call-flow engine: YAML flows, Jinja2 prompts, a pure engine.

The public surface: load a flow file (checked, prompts rehearsed) or only
check it, and play one event of a call with :func:`step`::

    from ivr import load_flow, step
    flow = load_flow("flows/post_sale.yaml", "prompts")
    state, actions, node_events = step(flow, None, {"type": "start", "now": now, ...})

Everything else lives in the subpackages: ``flow``, ``engine``,
``providers``, ``store``, ``lookups``, ``server``, ``reports`` and ``sim``.
"""

from ivr.engine.step import step
from ivr.flow.loader import check_flow, flow_from_source, load_flow
from ivr.flow.model import Flow
from ivr.flow.problems import FlowError, Problem

__all__ = ["Flow", "FlowError", "Problem", "check_flow", "flow_from_source", "load_flow", "step"]
