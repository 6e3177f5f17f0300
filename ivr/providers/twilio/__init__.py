"""Twilio: actions rendered as TwiML, request signatures, webhook fields."""

from ivr.providers.registry import Provider
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.providers.twilio.fake import fake_call

#: Twilio as the server, lint and ``ivr-sim`` know it: its routes stay at
#: the root (``/voice/<flow>``, ``/status``, ``/whisper``).
PROVIDER = Provider(
    name="twilio", title="Twilio (TwiML)", dialect=TwilioDialect, fake=fake_call, prefix="",
    secret_option="twilio-auth-token", secret_env="TWILIO_AUTH_TOKEN",
    secret_help="the account's auth token: checks X-Twilio-Signature (HMAC-SHA1)")
