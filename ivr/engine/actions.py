"""What the engine asks the caller's side to do: the outputs of ``engine.step``.

Actions are plain dataclasses with slots (cheaper to make than frozen
ones, a few each turn); nothing changes one once made: the renderers make a
new one with ``dataclasses.replace``.  They say *what* happens on the call
(speak, listen, transfer…) and never *how* a provider spells it: the web
layer and ``ivr-sim`` turn them into TwiML with ``ivr.providers.twilio.render``, or into text
for a terminal.  Effects (look-ups, text messages) are requests the runner
performs and answers with an event; they never reach the provider.

Times are in seconds, as TwiML counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- What the caller hears -------------------------------------------------


@dataclass(slots=True)
class Say:
    """Text to speak.  ``ssml`` is an XML fragment: text that is already
    escaped, optionally with SSML elements (``<break time="1s"/>``)."""

    ssml: str
    voice: str | None = None
    language: str | None = None
    loop: int | None = None


@dataclass(slots=True)
class Play:
    """Audio played from a URL."""

    url: str
    loop: int | None = None


@dataclass(slots=True)
class Pause:
    length: int = 1


Prompt = Say | Play | Pause


# --- What the caller may answer ---------------------------------------------


@dataclass(slots=True)
class Gather:
    """Listen for keys and/or speech while ``prompts`` play (barge-in).

    ``input`` is ``"dtmf"``, ``"speech"`` or ``"dtmf speech"``.  A silent
    caller falls through to the next verb, which the renderer makes a
    Redirect back to the engine.
    """

    prompts: tuple[Prompt, ...] = ()
    input: str = "dtmf"
    num_digits: int | None = None
    finish_on_key: str | None = None
    timeout: int = 5
    speech_timeout: str | None = None
    hints: tuple[str, ...] = ()
    language: str | None = None


# --- Where the call goes ------------------------------------------------------


@dataclass(slots=True)
class DialTarget:
    """One party to ring: ``kind`` is ``"number"``, ``"sip"`` or ``"queue"``."""

    kind: str
    address: str


@dataclass(slots=True)
class Dial:
    """Ring a human.  ``params`` (reason, order…) travel with the transfer:
    as SIP ``?headers`` on a SIP address, as query parameters on the
    whisper/queue URL otherwise."""

    target: DialTarget
    timeout: int | None = None
    caller_id: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    whisper_url: str | None = None


@dataclass(slots=True)
class Enqueue:
    """Put the caller in a named queue, waiting for an agent."""

    queue: str
    wait_url: str | None = None
    params: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Record:
    """Record a message (voicemail)."""

    max_length: int = 120
    timeout: int = 5
    finish_on_key: str = "#"
    play_beep: bool = True


@dataclass(slots=True)
class Redirect:
    """Fetch the next instructions from ``url`` (hold-and-poll)."""

    url: str


@dataclass(slots=True)
class Hangup:
    pass


# --- Requests to the runner, never sent to the provider ---------------------------


@dataclass(slots=True)
class Lookup:
    """Ask the runner to look something up; the answer comes back as a
    ``lookup_result`` event carrying the same ``request_id``."""

    request_id: str
    what: str
    args: dict = field(default_factory=dict)


@dataclass(slots=True)
class SendSms:
    """Ask the runner to text ``body`` to ``to`` (E.164); the answer comes
    back as an ``sms_result`` event carrying the same ``request_id``."""

    request_id: str
    to: str
    body: str


#: Requests the runner performs and answers with an event.
EFFECTS = (Lookup, SendSms)

Action = (Say | Play | Pause | Gather | Dial | Enqueue | Record | Redirect | Hangup
          | Lookup | SendSms)

#: Actions after which the provider needs no further TwiML from this turn.
TERMINAL = (Gather, Dial, Enqueue, Record, Redirect, Hangup)
