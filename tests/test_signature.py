import base64
import hashlib
import hmac

import pytest

from ivr.providers.dialect import Refusal, WebhookRequest
from ivr.providers.twilio.dialect import TwilioDialect
from ivr.providers.twilio.signature import (
    HMAC_SHA256,
    SETTINGS_HEADER,
    SIGNATURE_HEADER,
    body_sha256,
    is_valid_twilio_request,
    settings_algorithm,
    shared_key_headers,
    signed_headers,
    twilio_signature,
    url_variants,
)

# --- Published test vectors -----------------------------------------------------------
# Sources:
#   A: twilio/twilio-python tests/unit/test_request_validator.py (commit 306691e793f4)
#   B: Twilio docs, "Webhook security" walk-through (twilio.com/docs/usage/security)
#   C: twilio/twilio-node spec/validation.spec.js

TOKEN = "12345"
URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
URI_WITH_BODY = URI + "&bodySHA256=" + BODY_HASH
DUPLICATE_PARAMS = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234", "1234"]}
DUPLICATE_EXPECTED = "IK+Dwps556ElfBT0I3Rgjkr1wJU="

# (case, url, params, raw_body, expected signature): each must validate.
VECTORS = [
    # A: twilio-python
    ("A base", URI, PARAMS, None, EXPECTED),
    ("A duplicates", URI, DUPLICATE_PARAMS, None, DUPLICATE_EXPECTED),
    ("A https + :443 added", URI, PARAMS, None, "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ("A http + :80 added", URI.replace("https", "http"), PARAMS, None, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ("A http :1234 kept", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", PARAMS, None,
     "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ("A https :1234 stripped", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", PARAMS, None, EXPECTED),
    ("A JSON body", URI_WITH_BODY, {}, BODY, "a9nBmqA0ju/hNViExpshrM61xv4="),
    # B: Twilio docs walk-through
    ("B docs", "https://example.com/myapp.php?foo=1&bar=2",
     {"Digits": "1234", "To": "+18005551212", "From": "+14158675310",
      "Caller": "+14158675310", "CallSid": "CA1234567890ABCDE"}, None, "L/OH5YylLD5NRKLltdqwSvS0BnU="),
    # C: twilio-node
    ("C empty JSON body, :443", URI + "&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
     {}, b"{}", "Ldidvp12m26NI7eqEvxnEpkd9Hc="),
    ("C only bodySHA256", "https://mycompany.com/myapp.php?bodySHA256=" + BODY_HASH, {}, BODY,
     "y77kIzt2vzLz71DgmJGsen2scGs="),
    ("C user:pass@", "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2", PARAMS, None,
     "CukzLTc1tT5dXEDIHm/tKBanW10="),
    ("C user:pass@ + :443", "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2", PARAMS, None,
     "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="),
    ("C user@", "https://user@mycompany.com/myapp.php?foo=1&bar=2", PARAMS, None,
     "2YRLlVAflCqxaNicjMpJcSTgzSs="),
    ("C apostrophe, raw query", URI + "&Body=It's+amazing", PARAMS, None, "dsq4Ehbj6cs+KdTkpF5sSSplOWw="),
    ("C array param", URI, {"MessagingBinding.Address": ["+1325xxxxxxx", "+1415xxxxxxx"]}, None,
     "83O6e2vORAoJHUNzJjDWN1jz+BA="),
    ("C array param, reversed", URI, {"MessagingBinding.Address": ["+1415xxxxxxx", "+1325xxxxxxx"]}, None,
     "83O6e2vORAoJHUNzJjDWN1jz+BA="),
    ("C multiple params and values", URI, {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234", "1234"]},
     None, DUPLICATE_EXPECTED),
]


@pytest.mark.parametrize("case, url, params, raw_body, expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_published_vectors_validate(case, url, params, raw_body, expected):
    assert is_valid_twilio_request(TOKEN, url, params, expected, raw_body=raw_body)


def test_vector_a_string_to_sign():
    # telephony.md §3.2 gives the exact string to sign for vector A.
    s = ("https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309"
         "Digits1234From+14158675309To+18005551212")
    digest = hmac.new(b"12345", s.encode(), hashlib.sha1).digest()
    assert base64.b64encode(digest).decode() == EXPECTED == twilio_signature(TOKEN, URI, PARAMS)


def test_signature_over_exact_url():
    # The vectors above that name a URL with a port were signed over that
    # exact string; the signer must reproduce them without any variant.
    assert twilio_signature(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS) == (
        "kvajT1Ptam85bY51eRf/AJRuM3w=")
    assert twilio_signature(TOKEN, "http://mycompany.com:80/myapp.php?foo=1&bar=2", PARAMS) == (
        "0ZXoZLH/DfblKGATFgpif+LLRf4=")
    assert twilio_signature(TOKEN, URI_WITH_BODY, {}) == "a9nBmqA0ju/hNViExpshrM61xv4="


def test_body_hashes():
    assert body_sha256(BODY) == BODY_HASH
    # Twilio docs' JSON example body (telephony.md §3.2, vector B).
    assert body_sha256(b'{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}') == (
        "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9")


# --- URL variants ----------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("https://h.example/a?x=1&y=2", ["https://h.example/a?x=1&y=2", "https://h.example:443/a?x=1&y=2"]),
    ("https://h.example:443/a?x=1", ["https://h.example:443/a?x=1", "https://h.example/a?x=1"]),
    ("http://h.example/a?x=1", ["http://h.example/a?x=1", "http://h.example:80/a?x=1"]),
    ("http://h.example:80/a?x=1", ["http://h.example:80/a?x=1", "http://h.example/a?x=1"]),
    ("http://h.example:8080/a?x=1", ["http://h.example:8080/a?x=1", "http://h.example/a?x=1"]),
    ("https://h.example?x=1", ["https://h.example?x=1", "https://h.example:443?x=1"]),
    ("https://[2001:db8::1]/a?x=1", ["https://[2001:db8::1]/a?x=1", "https://[2001:db8::1]:443/a?x=1"]),
    ("https://[2001:db8::1]:8443/a", ["https://[2001:db8::1]:8443/a", "https://[2001:db8::1]/a"]),
    ("https://u:p@h.example/a", ["https://u:p@h.example/a", "https://u:p@h.example:443/a",
                                 "https://h.example/a", "https://h.example:443/a"]),
])
def test_url_variants(url, expected):
    assert url_variants(url) == expected


def test_url_variants_keep_query_and_scheme_verbatim():
    # Re-encoding or re-sorting the query breaks validation, so variants only
    # touch the authority: odd escapes, '+', apostrophes, '?'-only stay put.
    url = "HTTPS://h.example/a%2Fb?z=1&a=It's+a%20b&Caller=sip%3Ax%40y&empty="
    variants = url_variants(url)
    assert variants[0] == url
    assert variants[1] == "HTTPS://h.example:443/a%2Fb?z=1&a=It's+a%20b&Caller=sip%3Ax%40y&empty="
    assert url_variants("https://h.example/a?") == ["https://h.example/a?", "https://h.example:443/a?"]


def test_port_variants_validate_both_ways():
    params = {"Digits": "9"}
    for signed_url, received_url in [
        ("https://h.example/ivr?step=2", "https://h.example:443/ivr?step=2"),
        ("https://h.example:443/ivr?step=2", "https://h.example/ivr?step=2"),
        ("http://h.example/ivr?step=2", "http://h.example:80/ivr?step=2"),
        ("http://h.example:80/ivr?step=2", "http://h.example/ivr?step=2"),
    ]:
        sig = twilio_signature("tok", signed_url, params)
        assert is_valid_twilio_request("tok", received_url, params, sig), (signed_url, received_url)


def test_port_variants_do_not_cross_schemes_or_ports():
    sig = twilio_signature("tok", "https://h.example/ivr", {})
    assert not is_valid_twilio_request("tok", "http://h.example/ivr", {}, sig)
    # http does not get :443 and https does not get :80.
    assert not is_valid_twilio_request("tok", "http://h.example:443/ivr", {}, twilio_signature(
        "tok", "http://h.example:80/ivr", {}))
    assert not is_valid_twilio_request("tok", "https://h.example:80/ivr", {}, twilio_signature(
        "tok", "https://h.example:443/ivr", {}))


# --- Rejections ------------------------------------------------------------------------

def test_tampered_parameter_fails():
    assert not is_valid_twilio_request(TOKEN, URI, {**PARAMS, "Digits": "1235"}, EXPECTED)
    assert not is_valid_twilio_request(TOKEN, URI, {**PARAMS, "Extra": "1"}, EXPECTED)
    dropped = dict(PARAMS)
    del dropped["Digits"]
    assert not is_valid_twilio_request(TOKEN, URI, dropped, EXPECTED)


def test_tampered_url_fails():
    assert not is_valid_twilio_request(TOKEN, URI.replace("foo=1", "foo=2"), PARAMS, EXPECTED)
    assert not is_valid_twilio_request(TOKEN, URI + "&somethingUnexpected=true", PARAMS, EXPECTED)
    assert not is_valid_twilio_request(TOKEN, URI.replace("myapp", "yourapp"), PARAMS, EXPECTED)
    assert not is_valid_twilio_request(TOKEN, URI.replace("mycompany", "evil"), PARAMS, EXPECTED)


def test_wrong_token_fails():
    assert not is_valid_twilio_request("54321", URI, PARAMS, EXPECTED)


@pytest.mark.parametrize("signature", [None, "", b""])
def test_missing_signature_fails(signature):
    assert not is_valid_twilio_request(TOKEN, URI, PARAMS, signature)


def test_garbage_signature_fails_without_raising():
    for sig in ["WRONG_SIGNATURE", "RSOYDt4T1cUTdK1PDd93/VVr8B8", EXPECTED + " ", "é" * 28, "\x00"]:
        assert not is_valid_twilio_request(TOKEN, URI, PARAMS, sig)


def test_empty_token_refused():
    # An empty key would let anyone sign; treat it as misconfiguration.
    assert not is_valid_twilio_request("", URI, {}, twilio_signature("", URI, {}))


def test_signature_as_bytes():
    assert is_valid_twilio_request(TOKEN, URI, PARAMS, EXPECTED.encode())


# --- Parameters ------------------------------------------------------------------------

def test_parameter_order_independent():
    reordered = dict(reversed(list(PARAMS.items())))
    assert list(reordered) != list(PARAMS)
    assert twilio_signature(TOKEN, URI, reordered) == EXPECTED


def test_names_sorted_case_sensitive_byte_order():
    # ASCII order puts upper case first: "B" < "a" < "b".
    s = "https://h.example/Bxay1bz"
    expected = base64.b64encode(hmac.new(b"t", s.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature("t", "https://h.example/", {"b": "z", "a": "y1", "B": "x"}) == expected


def test_str_value_same_as_one_element_list():
    assert twilio_signature(TOKEN, URI, {k: [v] for k, v in PARAMS.items()}) == EXPECTED
    assert twilio_signature(TOKEN, URI, {k: (v,) for k, v in PARAMS.items()}) == EXPECTED


def test_empty_values_and_get_requests():
    # An empty value still contributes its name; no parameters signs the URL alone.
    with_empty = twilio_signature("t", "https://h.example/", {"Digits": ""})
    s = "https://h.example/Digits"
    assert with_empty == base64.b64encode(hmac.new(b"t", s.encode(), hashlib.sha1).digest()).decode()
    bare = base64.b64encode(hmac.new(b"t", b"https://h.example/?a=1", hashlib.sha1).digest()).decode()
    assert twilio_signature("t", "https://h.example/?a=1", {}) == bare
    assert twilio_signature("t", "https://h.example/?a=1", None) == bare


def test_non_ascii_values_signed_as_utf8():
    url = "https://ivr.example/gather?lang=fr-FR"
    params = {"SpeechResult": "Ça coûte 12 € à Zoë", "CallSid": "CA1"}
    s = url + "CallSidCA1" + "SpeechResultÇa coûte 12 € à Zoë"
    expected = base64.b64encode(hmac.new("clé".encode(), s.encode("utf-8"), hashlib.sha1).digest()).decode()
    assert twilio_signature("clé", url, params) == expected
    assert is_valid_twilio_request("clé", url, params, expected)
    assert not is_valid_twilio_request("clé", url, {**params, "SpeechResult": "Ca coute 12 € a Zoe"}, expected)


def test_non_ascii_names_sort_after_ascii():
    # Code point order is UTF-8 byte order: "É" (U+00C9) sorts after "z".
    s = "https://h.example/z1É2"
    expected = base64.b64encode(hmac.new(b"t", s.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature("t", "https://h.example/", {"É": "2", "z": "1"}) == expected


def test_bytes_parameters_rejected():
    with pytest.raises(TypeError):
        twilio_signature("t", "https://h.example/", {"Digits": b"1"})
    with pytest.raises(TypeError):
        twilio_signature("t", "https://h.example/", {"Digits": [b"1"]})


# --- JSON bodies (bodySHA256) ----------------------------------------------------------

JSON_SIG = "a9nBmqA0ju/hNViExpshrM61xv4="


def test_json_body_valid_ignores_form_params():
    assert is_valid_twilio_request(TOKEN, URI_WITH_BODY, {}, JSON_SIG, raw_body=BODY)
    # The body is not a form: whatever the caller passes as params is not signed.
    assert is_valid_twilio_request(TOKEN, URI_WITH_BODY, PARAMS, JSON_SIG, raw_body=BODY)


def test_json_body_tampered_fails():
    assert not is_valid_twilio_request(TOKEN, URI_WITH_BODY, {}, JSON_SIG, raw_body=BODY.replace(b"true", b"false"))
    assert not is_valid_twilio_request(TOKEN, URI_WITH_BODY, {}, JSON_SIG, raw_body=BODY + b" ")


def test_json_body_hash_in_url_tampered_fails():
    # Matching the hash to a forged body changes the signed URL.
    forged = b'{"property": "evil"}'
    forged_url = URI + "&bodySHA256=" + body_sha256(forged)
    assert not is_valid_twilio_request(TOKEN, forged_url, {}, JSON_SIG, raw_body=forged)
    # A hash that is wrong for the body fails even with a valid signature over that URL.
    bad_url = URI_WITH_BODY[:-1] + "1"  # hash ends in "0"
    assert bad_url != URI_WITH_BODY
    assert not is_valid_twilio_request(TOKEN, bad_url, {}, twilio_signature(TOKEN, bad_url, {}), raw_body=BODY)


def test_a_percent_encoded_body_hash_name_still_binds_the_body():
    url = URI_WITH_BODY.replace("bodySHA256", "%62ody%53HA256")
    assert url != URI_WITH_BODY
    signature = twilio_signature(TOKEN, url, {})
    assert is_valid_twilio_request(TOKEN, url, {}, signature, raw_body=BODY)
    assert not is_valid_twilio_request(TOKEN, url, {}, signature, raw_body=BODY + b" ")
    assert not is_valid_twilio_request(TOKEN, url, {}, signature)


def test_a_form_s_lists_sign_as_their_values_repeated_or_not():
    form = {"CallSid": ["CA1"], "Digits": ["2", "1", "2"], "From": ["+33612345678"]}
    one_by_one = {"CallSid": "CA1", "Digits": ["1", "2"], "From": "+33612345678"}
    assert twilio_signature(TOKEN, URI, form) == twilio_signature(TOKEN, URI, one_by_one)
    assert is_valid_twilio_request(TOKEN, URI, form, twilio_signature(TOKEN, URI, one_by_one))


def test_json_body_missing_fails():
    assert not is_valid_twilio_request(TOKEN, URI_WITH_BODY, {}, JSON_SIG)
    assert not is_valid_twilio_request(TOKEN, URI_WITH_BODY, {}, JSON_SIG, raw_body=b"")


def test_raw_body_ignored_without_body_hash():
    # A form POST handler may always pass the raw body; without bodySHA256 it is unused.
    assert is_valid_twilio_request(TOKEN, URI, PARAMS, EXPECTED, raw_body=b"CallSid=CA1234567890ABCDE&...")


# --- signed_headers -------------------------------------------------------------------

def test_signed_headers_roundtrip():
    url = "https://ivr.example/voice?flow=post-sale"
    params = {"CallSid": "CA1", "From": "+33612345678", "Digits": ["2", "1"]}
    headers = signed_headers("tok", url, params)
    assert list(headers) == [SIGNATURE_HEADER] == ["X-Twilio-Signature"]
    assert is_valid_twilio_request("tok", url, params, headers[SIGNATURE_HEADER])
    assert signed_headers(TOKEN, URI, PARAMS) == {"X-Twilio-Signature": EXPECTED}


def test_signed_headers_json_body():
    body = b'{"CallSid":"CA1"}'
    url = "https://ivr.example/hook?bodySHA256=" + body_sha256(body)
    sig = signed_headers("tok", url, {})[SIGNATURE_HEADER]
    assert is_valid_twilio_request("tok", url, {}, sig, raw_body=body)


# --- Shared-key signatures (HMAC-SHA256) ------------------------------------------------
# A Webhook Setting signs with a shared key: the same string, HMAC-SHA256, and the header
# X-Twilio-Webhooks-Signature-Settings (https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys).
# The vector was computed with the official SDKs' own code, which agree:
#   twilio-python 9.13.0 (PyPI), twilio/request_validator.py:
#     RequestValidator("shared-key-secret-12345").compute_signature(URL, PARAMS_DOCS, HMAC_SHA256)
#   twilio-node 6.3.1 (npm), lib/webhooks/webhooks.js:
#     getExpectedTwilioSignature("shared-key-secret-12345", URL, PARAMS_DOCS, "HMAC_SHA256")
# and, with HMAC-SHA1 and the token "12345", both give the docs' own "0/KCTR6DLpKmkAf8muzZqo1nDgQ=".
SHARED_KEY = "shared-key-secret-12345"
PARAMS_DOCS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
               "From": "+12349013030", "To": "+18005551212"}
SHARED_KEY_EXPECTED = "3PKbgFd+fKmR/k9hroxPDgyXbDM2E7mcp7cK0hqONNg="


def test_shared_key_vector_computed_with_the_sdks():
    assert twilio_signature(SHARED_KEY, URI, PARAMS_DOCS, HMAC_SHA256) == SHARED_KEY_EXPECTED
    assert twilio_signature(TOKEN, URI, PARAMS_DOCS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert is_valid_twilio_request(SHARED_KEY, URI, PARAMS_DOCS, SHARED_KEY_EXPECTED,
                                   algorithm=HMAC_SHA256)
    # The same key in HMAC-SHA1, or the vector under SHA-1: no match.
    assert not is_valid_twilio_request(SHARED_KEY, URI, PARAMS_DOCS, SHARED_KEY_EXPECTED)


@pytest.mark.parametrize("settings, algorithm", [
    (None, "HMAC_SHA1"), ("", "HMAC_SHA1"), ("key=webhooks_sharedkey_1", "HMAC_SHA1"),
    ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", "HMAC_SHA256"),
    ("algorithm= hmac_sha256 ,key=k", "HMAC_SHA256"), ("key=k,algorithm=HMAC_SHA512", None),
])
def test_the_settings_header_names_the_algorithm_as_the_sdks_read_it(settings, algorithm):
    assert settings_algorithm(settings) == algorithm


def _webhook(headers: dict[str, str], url: str = URI) -> WebhookRequest:
    lowered = {name.lower().encode(): value.encode() for name, value in headers.items()}
    return WebhookRequest("POST", url, "application/x-www-form-urlencoded", b"", {}, lowered.get)


def _form(params: dict) -> dict:
    return {name: [value] for name, value in params.items()}


def test_the_dialect_checks_a_shared_key_signature_with_the_shared_key():
    headers = shared_key_headers(SHARED_KEY, "webhooks_sharedkey_1", URI, PARAMS_DOCS)
    assert headers[SIGNATURE_HEADER] == SHARED_KEY_EXPECTED
    TwilioDialect(shared_key=SHARED_KEY).verify(TOKEN, _webhook(headers), _form(PARAMS_DOCS))
    TwilioDialect(shared_key=SHARED_KEY).verify("", _webhook(headers), _form(PARAMS_DOCS))


@pytest.mark.parametrize("dialect, secret, headers, reason", [
    (TwilioDialect(), TOKEN, {SETTINGS_HEADER: "key=k,algorithm=HMAC_SHA256"},
     "signed with a shared key, but no --twilio-shared-key is configured"),
    (TwilioDialect(shared_key="other"), TOKEN, {SETTINGS_HEADER: "key=k,algorithm=HMAC_SHA256"},
     "X-Twilio-Signature does not match this request"),
    (TwilioDialect(shared_key=SHARED_KEY), TOKEN, {SETTINGS_HEADER: "key=k,algorithm=MD5"},
     "X-Twilio-Webhooks-Signature-Settings names an unknown algorithm"),
    (TwilioDialect(shared_key=SHARED_KEY), TOKEN, {SETTINGS_HEADER: "algorithm=" + "A" * 300},
     "X-Twilio-Webhooks-Signature-Settings is malformed"),
    # Only a shared key configured: an auth-token signature cannot be checked.
    (TwilioDialect(shared_key=SHARED_KEY), "", {}, "not signed with the shared key"),
])
def test_wrong_or_unusable_shared_key_signatures_are_refused(dialect, secret, headers, reason):
    signed = {SIGNATURE_HEADER: SHARED_KEY_EXPECTED, **headers}
    with pytest.raises(Refusal) as refused:
        dialect.verify(secret, _webhook(signed), _form(PARAMS_DOCS))
    assert (refused.value.code, refused.value.reason) == (403, reason)
