"""The dashboard's flow drawing opens on the flow's entry node.

A flow's drawing is wider than the page (it is never drawn smaller than
its text: :func:`ivr.server.dashboard.readable`), so it scrolls in its
box, and a box opens scrolled to its top-left corner.  Both layouts put
the entry node in the top rank, over the nodes it leads to, and seldom at
the left edge: on a wide flow that corner is blank and the flow is out
of sight.  The page has no script, so the drawing goes in a canvas of
its own size with a mark on the entry node that CSS names as the box's
first scroll position (``scroll-initial-target``): the box opens with
the entry node centred, or as near as the box scrolls.  A browser
without that property shows the corner, as before.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = ["opening_on", "where_in_drawing"]

_SVG = "{http://www.w3.org/2000/svg}"
#: Drawing units left above the entry node when the box opens.
ABOVE = 16
#: A transform as (scale x, scale y, translation x, translation y): none.
_UNMOVED = (1.0, 1.0, 0.0, 0.0)
_TRANSFORM = re.compile(r"(translate|scale)\(\s*([-\d.eE]+)(?:[\s,]+([-\d.eE]+))?\s*\)")


def opening_on(svg: str, node: str) -> str:
    """``svg`` (either layout's drawing) in a canvas marking where ``node``
    is, for the page's CSS to open the drawing's box there; in a canvas
    without a mark when ``node`` is not found in it."""
    where = where_in_drawing(svg, node)
    mark = "" if where is None else (
        f'<span class="graph-entry" aria-hidden="true" '
        f'style="left:{where[0]:.3%};top:{where[1]:.3%}"></span>')
    return f'<div class="graph-canvas">{svg}{mark}</div>'


def where_in_drawing(svg: str, node: str) -> tuple[float, float] | None:
    """The point the drawing's box opens on: ``node``'s centre, a little
    above its top, as fractions of the drawing's width and height; None
    when the drawing has no ``<g data-node>`` of that name with text in
    it.  Both layouts write a node's lines centred on it
    (``text-anchor="middle"``), within the moves of the groups around it."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError:
        return None
    box = [float(v) for v in root.get("viewBox", "").replace(",", " ").split()]
    found = _node_group(root, node, _UNMOVED)
    if len(box) != 4 or not box[2] or not box[3] or found is None:
        return None
    group, (sx, sy, tx, ty) = found
    lines = [(float(t.get("x", 0)), float(t.get("y", 0)), float(t.get("font-size", 0)))
             for t in group.iter(f"{_SVG}text")]
    if not lines:
        return None
    x = lines[0][0] * sx + tx
    top = min(y - size for _x, y, size in lines) * sy + ty - ABOVE
    return _within((x - box[0]) / box[2]), _within((top - box[1]) / box[3])


def _node_group(element: ET.Element, node: str, transform: tuple) -> tuple | None:
    """``node``'s ``<g>`` and the transform of the groups around it (scale
    x, scale y, translation x, translation y), depth first."""
    transform = _composed(transform, element.get("transform"))
    if element.tag == f"{_SVG}g" and element.get("data-node") == node:
        return element, transform
    for child in element:
        found = _node_group(child, node, transform)
        if found is not None:
            return found
    return None


def _composed(outer: tuple, attribute: str | None) -> tuple:
    """``outer`` followed by the translations and scales of a ``transform``
    attribute (the only ones the layouts write, with ``rotate(0)``)."""
    sx, sy, tx, ty = outer
    for kind, first, second in _TRANSFORM.findall(attribute or ""):
        a = float(first)
        b = float(second) if second else (a if kind == "scale" else 0.0)
        if kind == "translate":
            tx, ty = tx + a * sx, ty + b * sy
        else:
            sx, sy = sx * a, sy * b
    return sx, sy, tx, ty


def _within(fraction: float) -> float:
    return min(max(fraction, 0.0), 1.0)
