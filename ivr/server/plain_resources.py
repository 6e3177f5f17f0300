"""The server's plain resources: a leaf whose refusals are one line of
plain text, the root, and the page of any path the server does not have.
The resources of :mod:`ivr.server.web` and :mod:`ivr.server.monitoring`
are built on :class:`PlainResource`."""

from __future__ import annotations

from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource

from ivr.server.requests import _METHOD_CHARS, plain_text

#: The methods served most, and the name of each one's ``render_`` method.
_RENDERERS = {b"POST": "render_POST", b"GET": "render_GET"}

class PlainResource(Resource):
    """A leaf whose refusals are one line of plain text: a method it does
    not serve is a 405 naming the ones it does (Twisted's own page is
    HTML, from a class it deprecates)."""

    isLeaf = True

    def render(self, request):
        # A POST or GET straight to its method (what Twisted's render would
        # call), without the checks below that such a method always passes.
        renderer = getattr(self, _RENDERERS.get(request.method, ""), None)
        if renderer is not None:
            try:
                return renderer(request)
            except UnsupportedMethod:
                return self._not_allowed(request)
        if not request.method or not set(request.method) <= _METHOD_CHARS:
            return plain_text(request, 400, "malformed method")
        # Twisted's HEAD calls render_GET, which a POST-only resource lacks.
        if request.method == b"HEAD" and getattr(self, "render_GET", None) is None:
            return self._not_allowed(request)
        try:
            return super().render(request)
        except UnsupportedMethod:
            return self._not_allowed(request)

    def _not_allowed(self, request) -> bytes:
        """405 naming the methods served (HEAD only where GET is)."""
        allowed = {name[len("render_"):].encode("ascii") for name in dir(self)
                   if name.startswith("render_") and name[len("render_"):].isupper()}
        if b"GET" not in allowed:
            allowed.discard(b"HEAD")
        request.setHeader(b"allow", b", ".join(sorted(allowed)))
        return plain_text(request, 405, "method not allowed")


class Root(Resource):
    """The server's root: an unknown path is a plain-text 404."""

    def getChild(self, path, request):
        return NotFound()

    def render(self, request):
        return NotFound().render(request)


class NotFound(PlainResource):
    """Any path the server does not have, whatever the method."""

    def render(self, request):
        return plain_text(request, 404, "not found")
