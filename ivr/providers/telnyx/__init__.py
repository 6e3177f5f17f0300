"""Telnyx: TeXML (TwiML-compatible) documents, Ed25519 signatures over
the timestamp and the raw body, ``v3:…`` call ids."""

from ivr.providers.registry import Provider
from ivr.providers.telnyx.dialect import TelnyxDialect
from ivr.providers.telnyx.fake import FakeTelnyxCall
from ivr.providers.telnyx.signature import test_key_pair

PROVIDER = Provider(
    name="telnyx",
    title="Telnyx (TeXML)",
    dialect=TelnyxDialect,
    fake=FakeTelnyxCall,
    prefix="telnyx/",
    secret_option="telnyx-public-key",
    secret_env="TELNYX_PUBLIC_KEY",
    secret_help="the account's Ed25519 public key, base64 (Mission Control portal, Keys & Credentials)",
    test_keys=test_key_pair,
)
