"""The engine's actions as a cXML document: TwiML's, from Twilio's
renderer (:func:`ivr.providers.twilio.render.render_twiml`), with the one
name cXML spells differently.  SignalWire's Say takes ``man``, ``woman``,
``alice``, Amazon Polly voices as ``Polly.<Voice>`` (``-Neural`` for the
neural ones) and Google Cloud voices as ``gcloud.<Voice>``
(https://developer.signalwire.com/compatibility-api/xml/voice/say), where
Twilio names Google's voices ``Google.<Voice>``: those are renamed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ivr.engine.actions import Action, Gather, Say
from ivr.providers.twilio.render import render_twiml

_TWILIO_GOOGLE = "Google."
_SIGNALWIRE_GOOGLE = "gcloud."


def cxml_voice(voice: str | None) -> str | None:
    """A flow's voice name (Twilio's spelling) as SignalWire spells it."""
    if voice and voice.startswith(_TWILIO_GOOGLE):
        return _SIGNALWIRE_GOOGLE + voice[len(_TWILIO_GOOGLE):]
    return voice


def _cxml(action):
    if isinstance(action, Say) and action.voice != cxml_voice(action.voice):
        return dataclasses.replace(action, voice=cxml_voice(action.voice))
    if isinstance(action, Gather):
        return dataclasses.replace(action, prompts=tuple(_cxml(prompt) for prompt in action.prompts))
    return action


def render_cxml(actions: Iterable[Action], action_url: str) -> bytes:
    """A cXML document for ``actions``; raises ``ValueError`` as
    :func:`ivr.providers.twilio.render.render_twiml` does."""
    return render_twiml([_cxml(action) for action in actions], action_url)
