"""Sending text messages: the performers of :class:`ivr.engine.actions.SendSms`.

The engine asks for a text with a ``SendSms`` effect; the runner hands it
to a sender's ``send(sms, now)`` and feeds the answer back as an
``sms_result`` event::

    {"status": "sent" | "failed", "sid": "SM…" | None, "error": None | "what went wrong"}

- :class:`TwilioSms` sends through Twilio's Messages API (treq, never
  blocking the reactor).
- :class:`NoSms` is the server's sender when no credentials are
  configured: every text takes the flow's ``failed`` branch.
- :class:`RecordingSms` is ``ivr-sim``'s: it keeps the texts instead of
  sending them, or fails them all when a scenario says so.

What can go wrong with Twilio, and the cause the node event keeps:

==============================  ==========================================
HTTP 4xx with Twilio's JSON     ``HTTP 400: Twilio error 21211: The 'To'
                                number +*********78 is not a valid phone
                                number.``
HTTP 401                        the same, plus which variables to check
HTTP 5xx                        ``HTTP 503: Twilio is unavailable``
connection refused, DNS         ``connection refused``, ``DNS lookup failed``
no answer within ``timeout``    ``timeout after 3 s``
an answer that is not JSON      ``malformed JSON from Twilio: …``
==============================  ==========================================

Nothing is retried: a request that reached Twilio before the connection
broke may have sent the text, and a caller texted twice is worse than a
caller told it did not work.  Numbers never reach the logs or the causes
in clear (all but their last two digits are masked).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlencode

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from ivr.engine.actions import SendSms
from ivr.engine.turn import sms_not_configured
from ivr.http_errors import CONNECTION_ERRORS, TIMEOUTS, cancelled, connection_cause
from ivr.phone import mask, mask_numbers

log = Logger()

TWILIO_API = "https://api.twilio.com"
#: Seconds Twilio has to answer: under the runner's look-up timeout (4 s by
#: default), so the cause says "timeout" from here rather than from the runner.
DEFAULT_TIMEOUT = 3.0

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
#: An alphanumeric sender ID: up to 11 letters, digits and spaces, one letter at least.
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


class SmsConfigError(Exception):
    """The environment configures Twilio texts only in part, or wrongly."""


class SmsError(Exception):
    """A text was not sent; the message is the cause the node event keeps."""


@dataclass(frozen=True)
class TwilioAccount:
    """What sending through Twilio needs: the account, and who the text is
    from (a number or sender ID, or a Messaging Service, or both)."""

    account_sid: str
    auth_token: str = field(repr=False)
    sender: str | None = None
    messaging_service_sid: str | None = None
    api_url: str = TWILIO_API

    @classmethod
    def from_environment(cls, environ, auth_token: str | None = None) -> "TwilioAccount | None":
        """The account ``environ`` configures: ``TWILIO_ACCOUNT_SID``,
        ``TWILIO_AUTH_TOKEN`` (else ``auth_token``, the one that signs
        webhooks), and ``TWILIO_SMS_FROM`` and/or
        ``TWILIO_MESSAGING_SERVICE_SID``; ``TWILIO_API_URL`` points at
        another server (a local fake).  None when no account SID is set:
        texts are not configured.  Raises :class:`SmsConfigError` naming
        every variable that is missing or wrong."""
        sid = environ.get("TWILIO_ACCOUNT_SID", "").strip()
        if not sid:
            return None
        token = environ.get("TWILIO_AUTH_TOKEN", "").strip() or auth_token
        sender = environ.get("TWILIO_SMS_FROM", "").strip() or None
        service_sid = environ.get("TWILIO_MESSAGING_SERVICE_SID", "").strip() or None
        problems = []
        if not _ACCOUNT_SID.match(sid):
            problems.append("TWILIO_ACCOUNT_SID must be AC followed by 32 hexadecimal digits")
        if not token:
            problems.append("TWILIO_AUTH_TOKEN is not set")
        if not sender and not service_sid:
            problems.append("set TWILIO_SMS_FROM (a number such as +33100000000 or a sender ID) "
                            "or TWILIO_MESSAGING_SERVICE_SID")
        if sender and not (_E164.match(sender) or _SENDER_ID.match(sender)):
            problems.append("TWILIO_SMS_FROM must be an E.164 number such as +33100000000 or a "
                            "sender ID of up to 11 letters and digits")
        if service_sid and not _SERVICE_SID.match(service_sid):
            problems.append("TWILIO_MESSAGING_SERVICE_SID must be MG followed by 32 "
                            "hexadecimal digits")
        if problems:
            raise SmsConfigError("texts cannot be sent: " + "; ".join(problems))
        api_url = environ.get("TWILIO_API_URL", "").strip().rstrip("/") or TWILIO_API
        return cls(sid, token, sender, service_sid, api_url)


class TwilioSms:
    """Sends texts with Twilio's Messages API: ``POST
    /2010-04-01/Accounts/{AccountSid}/Messages.json`` with ``To``,
    ``Body`` and ``From`` and/or ``MessagingServiceSid``, HTTP Basic auth
    with the account SID and auth token; Twilio answers 201 with the
    message's ``sid`` and ``status``, or an error ``{code, message,
    more_info, status}``.

    ``clock`` times requests out after ``timeout`` seconds; ``http``
    (anything with treq's ``post``, e.g. ``treq.testing.StubTreq``)
    replaces the connections made on ``clock`` (the reactor).
    """

    def __init__(self, account: TwilioAccount, clock, http=None, timeout: float = DEFAULT_TIMEOUT):
        self.account, self.clock, self.timeout = account, clock, timeout
        self.pool = None
        if http is None:
            http, self.pool = _treq_client(clock)
        self.http = http
        self.url = (f"{account.api_url}/2010-04-01/Accounts/"
                    f"{quote(account.account_sid, safe='')}/Messages.json")
        credentials = f"{account.account_sid}:{account.auth_token}".encode()
        self.headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json"}

    def send(self, sms: SendSms, now: datetime) -> defer.Deferred:
        """Send ``sms``: a Deferred of the answer (see the module
        docstring) that never fails, except when the caller cancels it."""
        d = defer.Deferred.fromCoroutine(self._post(sms))
        d.addTimeout(self.timeout, self.clock)
        d.addCallbacks(self._sent, self._failed, callbackArgs=(sms,), errbackArgs=(sms,))
        return d

    def close(self) -> defer.Deferred:
        """Close kept-alive connections (on server shutdown)."""
        return self.pool.closeCachedConnections() if self.pool else defer.succeed(None)

    async def _post(self, sms: SendSms) -> str:
        form = {"To": sms.to, "Body": sms.body}
        if self.account.sender:
            form["From"] = self.account.sender
        if self.account.messaging_service_sid:
            form["MessagingServiceSid"] = self.account.messaging_service_sid
        try:
            response = await self.http.post(self.url, data=urlencode(form).encode("ascii"),
                                            headers=self.headers, allow_redirects=False)
        except TIMEOUTS as failure:
            raise SmsError(f"connect timeout ({type(failure).__name__})") from None
        except CONNECTION_ERRORS as failure:
            if cancelled(failure):
                raise defer.CancelledError() from None  # our timeout, or the runner's
            raise SmsError(connection_cause(failure, "Twilio")) from None
        try:
            body = await response.content()
        except Exception as failure:  # noqa: BLE001 - the answer never arrived whole
            if cancelled(failure):
                raise defer.CancelledError() from None
            raise SmsError(f"connection lost while reading Twilio's answer "
                           f"({type(failure).__name__})") from None
        return _message_sid(response.code, body)

    def _sent(self, sid: str, sms: SendSms) -> dict:
        log.info("sms {request} to {to} sent as {sid}", request=sms.request_id, to=mask(sms.to),
                 sid=sid)
        return {"status": "sent", "sid": sid, "error": None}

    def _failed(self, failure, sms: SendSms):
        if failure.check(defer.CancelledError):
            return failure  # the runner gave up on us: it answers the flow itself
        if failure.check(defer.TimeoutError):
            cause = f"timeout after {self.timeout:g} s"
        elif failure.check(SmsError):
            cause = str(failure.value)
        else:  # no traceback in the log: it could show the number in clear
            cause = f"unexpected error: {failure.type.__name__}: {failure.value}"
        cause = mask_numbers(cause)  # Twilio quotes the number it refuses
        log.warn("sms {request} to {to} failed: {cause}", request=sms.request_id,
                 to=mask(sms.to), cause=cause)
        return {"status": "failed", "sid": None, "error": cause}


def _message_sid(code: int, body: bytes) -> str:
    """The sid of the message Twilio created, from its answer; raises
    :class:`SmsError` with the cause when it created none."""
    try:
        answer = json.loads(body)
    except ValueError as error:
        if 200 <= code < 300:
            raise SmsError(f"malformed JSON from Twilio: {error}") from None
        answer = None
    if code >= 400:
        cause = f"HTTP {code}"
        if code >= 500:
            cause += ": Twilio is unavailable"
        if isinstance(answer, dict) and answer.get("message"):
            cause += f": Twilio error {answer.get('code', '?')}: {answer['message']}"
        if code == 401:
            cause += " (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)"
        raise SmsError(cause)
    if not 200 <= code < 300:
        raise SmsError(f"unexpected HTTP {code} from Twilio")
    if not isinstance(answer, dict) or not isinstance(answer.get("sid"), str):
        raise SmsError("unexpected answer from Twilio: no message sid in it")
    if answer.get("status") in ("failed", "undelivered", "canceled"):
        raise SmsError(f"Twilio says the message {answer['status']}: error "
                       f"{answer.get('error_code')}: {answer.get('error_message')}")
    return answer["sid"]


class NoSms:
    """The sender when no Twilio account is configured: texts fail with
    "SMS not configured", and the flow takes its ``failed`` branch."""

    def send(self, sms: SendSms, now: datetime) -> dict:
        return sms_not_configured(sms, now)


@dataclass
class RecordingSms:
    """``ivr-sim``'s sender: keeps each text in ``sent`` instead of sending
    it, or, with ``fail``, fails every text with that cause."""

    fail: str | None = None
    sent: list = field(default_factory=list)

    def send(self, sms: SendSms, now: datetime) -> dict:
        if self.fail:
            return {"status": "failed", "sid": None, "error": self.fail}
        self.sent.append(sms)
        return {"status": "sent", "sid": f"SM{len(self.sent):032d}", "error": None}


def sender_for(account: TwilioAccount | None, reactor) -> TwilioSms | NoSms:
    """The server's sender: Twilio with ``account``, else :class:`NoSms`."""
    if account is None:
        log.info("texts are not configured (no TWILIO_ACCOUNT_SID): sms nodes take their "
                 "failed branch")
        return NoSms()
    log.info("texts through Twilio account {sid} from {sender}", sid=account.account_sid,
             sender=account.messaging_service_sid or account.sender)
    return TwilioSms(account, reactor)


class SmsService(service.Service):
    """Closes the sender's kept-alive connections when the server stops."""

    def __init__(self, sender):
        self.sender = sender

    def stopService(self):
        super().stopService()
        close = getattr(self.sender, "close", None)
        return close() if close else None


def _treq_client(reactor):
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 2
    return HTTPClient(Agent(reactor, pool=pool)), pool
