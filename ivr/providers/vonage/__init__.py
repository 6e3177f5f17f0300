"""Vonage (NCCO): its webhooks, signed-webhook JWT, NCCO and a fake Vonage."""

from ivr.providers.registry import Provider
from ivr.providers.vonage.dialect import VonageDialect
from ivr.providers.vonage.fake import fake_call

PROVIDER = Provider(
    name="vonage",
    title="Vonage (NCCO)",
    dialect=VonageDialect,
    fake=fake_call,
    prefix="vonage/",
    secret_option="vonage-signature-secret",
    secret_env="VONAGE_SIGNATURE_SECRET",
    secret_help="the account's signature secret, which signs the webhooks' JWT (HS256)",
)
