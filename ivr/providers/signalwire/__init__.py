"""SignalWire: cXML (TwiML-compatible) documents, ``X-SignalWire-Signature``
keyed with the project's signing key, UUID identifiers."""

from ivr.providers.registry import Provider
from ivr.providers.signalwire.dialect import SignalWireDialect
from ivr.providers.signalwire.fake import FakeSignalWireCall

PROVIDER = Provider(
    name="signalwire",
    title="SignalWire (cXML)",
    dialect=SignalWireDialect,
    fake=FakeSignalWireCall,
    prefix="signalwire/",
    secret_option="signalwire-signing-key",
    secret_env="SIGNALWIRE_SIGNING_KEY",
    secret_help="the project's signing key (SignalWire dashboard, API page), which signs every webhook",
)
