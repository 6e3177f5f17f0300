"""jambonz (JSON verbs): its hooks, Jambonz-Signature, verbs and a fake jambonz."""

from ivr.providers.jambonz.dialect import JambonzDialect
from ivr.providers.jambonz.fake import fake_call
from ivr.providers.registry import Provider

PROVIDER = Provider(
    name="jambonz",
    title="jambonz (JSON verbs)",
    dialect=JambonzDialect,
    fake=fake_call,
    prefix="jambonz/",
    secret_option="jambonz-webhook-secret",
    secret_env="JAMBONZ_WEBHOOK_SECRET",
    secret_help="the account's webhook secret, which signs Jambonz-Signature (HMAC-SHA256)",
)
