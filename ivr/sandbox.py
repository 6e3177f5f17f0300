"""The Jinja2 sandbox that prompts and flow expressions run in."""

from __future__ import annotations

from jinja2.sandbox import SandboxedEnvironment

__all__ = ["Sandbox"]


class Sandbox(SandboxedEnvironment):
    """A sandboxed environment whose templates see its globals as a plain
    dict.  Jinja gives each template a ChainMap over them, and copying a
    ChainMap into every render's context took a third of the time of
    rendering a short prompt; our globals are set before any template is
    loaded and never change."""

    def make_globals(self, d):
        return {**self.globals, **(d or {})}

    def getattr(self, obj, attribute):
        """``order.number`` on flow data (a dict) is its key, looked up
        first.  Jinja tries the attribute first, which on a dict fails
        (an exception built each time) unless the key is named like a dict
        method: ``order.items`` was the method, never the order's items."""
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)
