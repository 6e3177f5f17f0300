"""Sealing call states: AES-256-GCM with one key per call.

A state was sealed with AES-256-GCM-SIV under one key for every call: safe
even if a random nonce ever repeated, but OpenSSL's GCM-SIV takes about
5 µs of CPU for a 2 kB state, seven times AES-GCM's, on every turn.  AES-GCM
is not safe when a nonce repeats under one key, so each call gets a key of
its own, derived from the store's key and the call id (HMAC-SHA256): a
call saves its state a few dozen times, each with a random 96-bit nonce,
which makes a repeat under one key far less likely than any other failure
(random nonces are safe for 2^32 messages per key).  The call id is also
authenticated with each state, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Callable

import orjson
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV

#: The first byte of a call state sealed with AES-GCM-SIV (then the nonce
#: and the ciphertext), as states were sealed before; a state sealed with
#: Fernet (before that) is text.
_STATE_V2 = b"\x02"
#: The first byte of a call state sealed with AES-GCM under the call's own
#: key (then the nonce and the ciphertext): how states are sealed now.
_STATE_V3 = b"\x03"

#: Calls whose key is kept (a live call seals its state on every turn).
KEYS_KEPT = 4096


def gcm_siv_cipher(key: bytes) -> AESGCMSIV | None:
    """The AES-GCM-SIV cipher states were sealed with before, keyed from
    the caller key ``key``: it opens those still stored.  None when this
    OpenSSL has no AES-GCM-SIV."""
    try:
        return AESGCMSIV(hmac.new(key, b"ivr.store/state", hashlib.sha256).digest())
    except UnsupportedAlgorithm:
        return None


class CallKeys:
    """The AES-GCM cipher of each call, derived from ``key``, the last
    :data:`KEYS_KEPT` calls' kept."""

    def __init__(self, key: bytes):
        self._key = hmac.new(key, b"ivr.store/state-per-call", hashlib.sha256).digest()
        self._ciphers: dict[str, AESGCM] = {}

    def cipher(self, call_id: str) -> AESGCM:
        """The cipher that seals and opens ``call_id``'s state."""
        cipher = self._ciphers.get(call_id)
        if cipher is None:
            if len(self._ciphers) >= KEYS_KEPT:
                self._ciphers.clear()
            cipher = AESGCM(hmac.new(self._key, call_id.encode("utf-8"), hashlib.sha256).digest())
            self._ciphers[call_id] = cipher
        return cipher


class _SealedStates:
    """Methods of the call store, :class:`ivr.store.sqlite.store.CallStore`."""

    _call_keys: CallKeys
    _state_cipher: AESGCMSIV | None  # opens states sealed with GCM-SIV, where OpenSSL has it
    _open_sealed: Callable[[str], str]  # opens text sealed with the store's Fernet

    def _seal_state(self, call_id: str, state: dict) -> bytearray:
        """A call's state, sealed: AES-256-GCM over its JSON with the call's
        own key (:mod:`ivr.store.sqlite.state_seal`) and a random nonce per
        save, the call id authenticated alongside (one call's state cannot
        be passed off as another's).  A ``bytearray``, which Python's
        sqlite3 binds at once (``bytes`` go through its adapters' look-up,
        which builds and drops an ``AttributeError`` each time)."""
        nonce = os.urandom(12)
        return bytearray().join((_STATE_V3, nonce, self._call_keys.cipher(call_id).encrypt(
            nonce, orjson.dumps(state), call_id.encode())))

    def _open_state(self, call_id: str, value: bytes | str) -> dict:
        """A sealed state opened: sealed per call, or as states were sealed
        before (AES-GCM-SIV under the store's key; Fernet before that)."""
        if isinstance(value, str):  # sealed with Fernet (as before GCM-SIV)
            return json.loads(self._open_sealed(value))
        if value[:1] == _STATE_V3:
            cipher = self._call_keys.cipher(call_id)
        elif value[:1] == _STATE_V2 and self._state_cipher is not None:
            cipher = self._state_cipher
        else:
            raise ValueError("call state sealed in a format this server cannot open")
        try:
            payload = cipher.decrypt(value[1:13], value[13:], call_id.encode())
        except InvalidTag:
            raise ValueError("call state sealed with another caller key or for another call") from None
        return orjson.loads(payload)
