"""The keys call states are sealed with: one AES-256-GCM key per call.

A state was sealed with AES-256-GCM-SIV under one key for every call: safe
even if a random nonce ever repeated, but OpenSSL's GCM-SIV costs about
40 µs for a 2 kB state (six times AES-GCM's), a tenth of a turn.  AES-GCM
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

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Calls whose key is kept (a live call seals its state on every turn).
KEYS_KEPT = 4096


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
