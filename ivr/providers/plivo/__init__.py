"""Plivo: Plivo XML, the V3 request signature and Plivo's callbacks."""

from ivr.providers.plivo.dialect import PlivoDialect
from ivr.providers.plivo.fake import fake_call
from ivr.providers.registry import Provider

PROVIDER = Provider(
    name="plivo",
    title="Plivo (Plivo XML)",
    dialect=PlivoDialect,
    fake=fake_call,
    prefix="plivo/",
    secret_option="plivo-auth-token",
    secret_env="PLIVO_AUTH_TOKEN",
    secret_help="Plivo auth token (of the account or sub-account owning the number), "
                "which keys the X-Plivo-Signature-V3 of every callback",
)
