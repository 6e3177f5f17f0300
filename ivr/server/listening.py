"""``ivr-serve``'s listening socket, bound before anything else is made.

A port already in use must be one line saying which, and leave nothing
behind: :func:`bind_early` binds ``--listen`` first, before the database,
the log file or the access log exist, with a factory standing in for the
site, which :class:`PreboundPort` hands the connections to once the
server is built.
"""

from __future__ import annotations

import errno
import re

from twisted.application import service
from twisted.internet import protocol
from twisted.internet.error import CannotListenError

from ivr.i18n import _
from ivr.server.workers import listening_socket, shares_a_socket

__all__ = ["PreboundPort", "SiteToCome", "bind_early", "cannot_listen"]


class SiteToCome(protocol.Factory):
    """Stands in for the site while the server is built: the socket
    listens but accepts nothing until :class:`PreboundPort` starts."""

    site: protocol.Factory | None = None

    def logPrefix(self):
        return "WebhookSite"  # the port's "… starting on N" line names what it serves

    def buildProtocol(self, addr):
        return self.site.buildProtocol(addr) if self.site is not None else None

    def stopFactory(self):
        if self.site is not None:
            self.site.doStop()


def bind_early(description: str, reactor, for_workers: bool = False):
    """The listening port of the strports ``description``, bound now and
    not accepting yet: for :class:`PreboundPort`, or ``for_workers`` to
    share.  None for a kind of socket bound only when the service starts
    (``ssl:``, whose certificate files are read then).  Raises
    :class:`twisted.internet.error.CannotListenError`."""
    if not shares_a_socket(description):
        return None
    return listening_socket(description, reactor,
                            protocol.Factory() if for_workers else SiteToCome())


class PreboundPort(service.Service):
    """Serve ``site`` on ``port``, bound by :func:`bind_early`."""

    def __init__(self, port, site):
        self.port, self.site = port, site

    def startService(self):
        super().startService()
        self.site.doStart()
        self.port.factory.site = self.site
        self.port.startReading()

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None


def cannot_listen(error: CannotListenError, description: str) -> str:
    """One line for the operator: where the server could not listen, why,
    and for a port in use the ``--listen`` of the next port."""
    address = f"{error.interface}:{error.port}" if error.interface else f"{error.port}"
    in_use = getattr(error.socketError, "errno", None) == errno.EADDRINUSE
    if not in_use:
        reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        return _("cannot listen on {address}: {reason}").format(address=address,
                                                                reason=reason.lower())
    other = another_port(description, error.port)
    if other is None:
        return _("cannot listen on {address}: address already in use").format(address=address)
    return _("cannot listen on {address}: address already in use; pick another with "
             "--listen {listen}").format(address=address, listen=other)


def another_port(description: str, port) -> str | None:
    """``description`` listening on the port after ``port`` (None for a
    UNIX socket, or a port 0 the kernel chose)."""
    if not isinstance(port, int) or port == 0:
        return None
    positional = re.sub(rf"^(tcp6?:){port}(?=:|$)", rf"\g<1>{port + 1}", description)
    if positional != description:
        return positional
    named = re.sub(rf"(:port={port})(?=:|$)", f":port={port + 1}", description)
    return named if named != description else None
