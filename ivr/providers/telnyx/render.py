"""The engine's actions as a TeXML document.

TeXML is TwiML-compatible (https://developers.telnyx.com/docs/voice/programmable-voice/texml-fundamentals),
so Twilio's renderer (:func:`ivr.providers.twilio.render.render_twiml`)
writes it, with what TeXML's ``<Gather>`` does differently
(https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/gather):

- no ``method`` attribute: the action is requested with the TeXML
  application's method, which must be POST (see docs/providers.md);
- ``timeout`` is 1 to 120 seconds: a flow's timeout outside that range is
  brought to the nearest bound (a gap, :func:`ivr.providers.telnyx.gaps.gaps`);
- ``speechTimeout`` is a number of seconds, without Twilio's ``auto``:
  "auto" is left out, which leaves the end of speech to Telnyx;
- ``<Dial timeout>`` is 5 to 120 seconds
  (https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/dial): brought
  to the nearest bound likewise;
- speech is recognised by the engine ``transcriptionEngine`` names:
  Google here, which takes the flow's languages and hints.

And ``<Say>`` (https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/say):
the flow's voices (``Polly.Lea-Neural``…) are sent as named, a form the
page lists; without one Telnyx speaks with ``man``, always in US English,
so a Say in another language gets ``alice``, which speaks its ``language``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from twisted.logger import Logger

from ivr.engine.actions import Action, Dial, Gather, Say
from ivr.providers.twilio.render import render_twiml

#: TeXML's bounds of Gather's and Dial's ``timeout``.
TIMEOUT_RANGE = (1, 120)
DIAL_TIMEOUT_RANGE = (5, 120)
#: The speech engine asked for.
TRANSCRIPTION_ENGINE = "Google"

_GATHER_TAG = re.compile(r'<Gather (?P<attributes>[^>]*?)(?P<end> ?/?>)')
_log = Logger()
_logged: set[str] = set()


def _log_once(what: str, message: str) -> None:
    """Log a nearest equivalent used at run time, once per kind of gap."""
    if what not in _logged:
        _logged.add(what)
        _log.info("telnyx: {message}", message=message)


def texml_say(say: Say) -> Say:
    """``say`` with a voice that speaks its language."""
    if say.voice is None and say.language and say.language.lower() != "en-us":
        _log_once("voice", f"no voice for {say.language}: Telnyx's default speaks US English; alice used")
        return dataclasses.replace(say, voice="alice")
    return say


def _texml_prompt(prompt):
    return texml_say(prompt) if isinstance(prompt, Say) else prompt


def texml_gather(gather: Gather) -> Gather:
    """``gather`` within what TeXML's Gather takes."""
    low, high = TIMEOUT_RANGE
    timeout = min(max(gather.timeout, low), high)
    if timeout != gather.timeout:
        _log_once("timeout", f"Gather timeout {gather.timeout}s is outside TeXML's {low}-{high}s; "
                             f"{timeout}s used")
    speech_timeout = gather.speech_timeout
    if speech_timeout is not None and not speech_timeout.isdigit():
        speech_timeout = None  # "auto": Telnyx's own end-of-speech detection
    return dataclasses.replace(gather, timeout=timeout, speech_timeout=speech_timeout,
                               prompts=tuple(_texml_prompt(prompt) for prompt in gather.prompts))


def texml_dial(dial: Dial) -> Dial:
    """``dial`` with a ring timeout TeXML takes."""
    low, high = DIAL_TIMEOUT_RANGE
    if dial.timeout is None or low <= dial.timeout <= high:
        return dial
    timeout = min(max(dial.timeout, low), high)
    _log_once("dial-timeout", f"Dial timeout {dial.timeout}s is outside TeXML's {low}-{high}s; "
                              f"{timeout}s used")
    return dataclasses.replace(dial, timeout=timeout)


def _texml(action: Action) -> Action:
    if isinstance(action, Gather):
        return texml_gather(action)
    if isinstance(action, Dial):
        return texml_dial(action)
    return _texml_prompt(action)


def _gather_attributes(match: re.Match) -> str:
    attributes = match.group("attributes").replace(' method="POST"', "").replace('method="POST" ', "")
    if 'input="dtmf"' not in attributes and "input=" in attributes:
        attributes += f' transcriptionEngine="{TRANSCRIPTION_ENGINE}"'
    return f"<Gather {attributes}{match.group('end')}"


def render_texml(actions: Iterable[Action], action_url: str) -> bytes:
    """A TeXML document for ``actions``; input and transfers report to
    ``action_url``.  Raises ``ValueError`` as the TwiML renderer does."""
    adapted = [_texml(action) for action in actions]
    document = render_twiml(adapted, action_url).decode("utf-8")
    return _GATHER_TAG.sub(_gather_attributes, document).encode("utf-8")
