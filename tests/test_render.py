"""ivr.render: actions → TwiML bytes, and the TwiML checker.

Expected documents are written out literally: they are what twilio-python
would emit for the same verbs (sorted attributes, ``" />"``, no newlines).
"""

import pytest

from ivr.engine.actions import (
    Dial,
    DialTarget,
    Enqueue,
    Gather,
    Hangup,
    Lookup,
    Pause,
    Play,
    Record,
    Redirect,
    Say,
)
from ivr.providers.twilio.render import render_twiml, validate_twiml

URL = "https://ivr.example.com/step"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def render(*actions, action_url=URL, **kwargs):
    """Render, and hold every document to the checker as well."""
    document = render_twiml(actions, action_url, **kwargs)
    assert validate_twiml(document) == []
    return document


def response(body):
    return (HEAD + "<Response>" + body + "</Response>").encode("utf-8")


# --- Golden documents, one per verb --------------------------------------------


def test_hangup_renders_the_whole_document_without_whitespace():
    assert render(Hangup()) == (
        b'<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'
    )


def test_say_carries_voice_language_and_loop():
    document = render(Say("Bonjour", voice="Polly.Lea-Neural", language="fr-FR", loop=2))
    assert document == response('<Say language="fr-FR" loop="2" voice="Polly.Lea-Neural">Bonjour</Say>')


def test_say_omits_unset_attributes():
    assert render(Say("Hello")) == response("<Say>Hello</Say>")


def test_say_nests_ssml_and_keeps_escaped_order_data_escaped_once():
    say = Say(
        'Commande n°100234 : Tom &amp; Jerry &lt;XL&gt; <break time="500ms"/> suite',
        voice="Polly.Lea-Neural",
        language="fr-FR",
    )
    assert render(say) == response(
        '<Say language="fr-FR" voice="Polly.Lea-Neural">'
        'Commande n°100234 : Tom &amp; Jerry &lt;XL&gt; <break time="500ms" /> suite'
        "</Say>"
    )


def test_ssml_attributes_are_sorted_like_twilio_python():
    say = Say('Un<break time="1s" strength="strong"/><say-as interpret-as="digits">42</say-as>')
    assert render(say) == response(
        '<Say>Un<break strength="strong" time="1s" /><say-as interpret-as="digits">42</say-as></Say>'
    )


def test_ssml_lang_keeps_its_xml_prefix():
    say = Say('<lang xml:lang="en-US">order</lang> numéro')
    assert render(say) == response('<Say><lang xml:lang="en-US">order</lang> numéro</Say>')


def test_play_puts_the_url_in_the_body_with_loop():
    assert render(Play("https://cdn.example.com/hold.mp3?v=1&x=2", loop=3)) == response(
        '<Play loop="3">https://cdn.example.com/hold.mp3?v=1&amp;x=2</Play>'
    )


def test_pause_carries_length():
    assert render(Pause(2)) == response('<Pause length="2" />')


def test_gather_with_all_attributes_nests_prompts_and_is_followed_by_redirect():
    gather = Gather(
        prompts=(Say("Tapez 1", language="fr-FR"), Pause(1), Play("https://cdn.example.com/menu.mp3")),
        input="dtmf speech",
        num_digits=1,
        finish_on_key="#",
        timeout=7,
        speech_timeout="auto",
        hints=("oui", "non", "conseiller"),
        language="fr-FR",
    )
    assert render(gather) == response(
        '<Gather action="https://ivr.example.com/step" finishOnKey="#" hints="oui, non, conseiller" '
        'input="dtmf speech" language="fr-FR" method="POST" numDigits="1" speechTimeout="auto" timeout="7">'
        '<Say language="fr-FR">Tapez 1</Say><Pause length="1" /><Play>https://cdn.example.com/menu.mp3</Play>'
        "</Gather>"
        '<Redirect method="POST">https://ivr.example.com/step</Redirect>'
    )


def test_gather_with_empty_finish_on_key_emits_it_to_disable_the_key():
    assert render(Gather(finish_on_key="")) == response(
        '<Gather action="https://ivr.example.com/step" finishOnKey="" input="dtmf" method="POST" timeout="5" />'
        '<Redirect method="POST">https://ivr.example.com/step</Redirect>'
    )


def test_action_url_query_is_escaped_in_attributes_and_redirect_body():
    assert render(Gather(), action_url="/step?call=CA1&turn=2") == response(
        '<Gather action="/step?call=CA1&amp;turn=2" input="dtmf" method="POST" timeout="5" />'
        '<Redirect method="POST">/step?call=CA1&amp;turn=2</Redirect>'
    )


def test_method_applies_to_every_request_for_the_action_url_but_not_to_redirect_actions():
    assert render(Say("Hi"), Gather(), action_url="/step", method="GET") == response(
        '<Say>Hi</Say><Gather action="/step" input="dtmf" method="GET" timeout="5" />'
        '<Redirect method="GET">/step</Redirect>'
    )
    assert render(Redirect("/poll"), action_url="/step", method="GET") == response(
        '<Redirect method="POST">/poll</Redirect>'
    )


def test_dial_number_appends_params_to_whisper_url_after_its_existing_query():
    dial = Dial(
        DialTarget("number", "+33123456789"),
        timeout=20,
        caller_id="+33900000000",
        params=(("reason", "carrier delay"), ("order", "100234")),
        whisper_url="https://ivr.example.com/whisper?lang=fr",
    )
    assert render(dial, action_url="/dial-done") == response(
        '<Dial action="/dial-done" callerId="+33900000000" method="POST" timeout="20">'
        '<Number url="https://ivr.example.com/whisper?lang=fr&amp;reason=carrier+delay&amp;order=100234">'
        "+33123456789</Number></Dial>"
    )


def test_dial_number_keeps_params_before_a_url_fragment():
    dial = Dial(
        DialTarget("number", "+33123456789"),
        params=(("order", "100234"),),
        whisper_url="https://ivr.example.com/whisper#ct=2000",
    )
    assert render(dial, action_url="/dial-done") == response(
        '<Dial action="/dial-done" method="POST">'
        '<Number url="https://ivr.example.com/whisper?order=100234#ct=2000">+33123456789</Number></Dial>'
    )


def test_dial_number_without_whisper_url_has_no_url():
    dial = Dial(DialTarget("number", "+33123456789"), params=(("order", "100234"),))
    assert render(dial, action_url="/dial-done") == response(
        '<Dial action="/dial-done" method="POST"><Number>+33123456789</Number></Dial>'
    )


def test_dial_sip_carries_params_as_uri_headers_with_encoded_values():
    dial = Dial(
        DialTarget("sip", "sip:agent@pbx.example.com"),
        params=(("X-Reason", "carrier_delay"), ("X-Order", "100234"), ("X-Note", "a b;c=d")),
    )
    assert render(dial, action_url="/dial-done") == response(
        '<Dial action="/dial-done" method="POST"><Sip>'
        "sip:agent@pbx.example.com?X-Reason=carrier_delay&amp;X-Order=100234&amp;X-Note=a%20b%3Bc%3Dd"
        "</Sip></Dial>"
    )


def test_dial_sip_adds_headers_after_existing_ones():
    dial = Dial(DialTarget("sip", "sip:agent@pbx.example.com?X-Site=lyon"), params=(("X-Order", "1"),))
    assert render(dial, action_url="/dial-done") == response(
        '<Dial action="/dial-done" method="POST">'
        "<Sip>sip:agent@pbx.example.com?X-Site=lyon&amp;X-Order=1</Sip></Dial>"
    )


def test_dial_queue_names_the_queue():
    assert render(Dial(DialTarget("queue", "support-fr")), action_url="/dial-done") == response(
        '<Dial action="/dial-done" method="POST"><Queue>support-fr</Queue></Dial>'
    )


def test_enqueue_appends_params_to_wait_url():
    enqueue = Enqueue("support-fr", wait_url="https://ivr.example.com/wait", params=(("order", "100234"),))
    assert render(enqueue, action_url="/queue-done") == response(
        '<Enqueue action="/queue-done" method="POST" waitUrl="https://ivr.example.com/wait?order=100234">'
        "support-fr</Enqueue>"
    )


def test_record_carries_all_its_attributes_with_boolean_as_text():
    record = Record(max_length=60, timeout=3, finish_on_key="*", play_beep=False)
    assert render(record, action_url="/voicemail") == response(
        '<Record action="/voicemail" finishOnKey="*" maxLength="60" method="POST" playBeep="false" timeout="3" />'
    )


def test_redirect_is_posted_to_its_own_url():
    assert render(Redirect("https://ivr.example.com/poll?call=CA1&n=3")) == response(
        '<Redirect method="POST">https://ivr.example.com/poll?call=CA1&amp;n=3</Redirect>'
    )


def test_prompts_then_gather_render_in_order():
    document = render(
        Say("Bienvenue", language="fr-FR"),
        Pause(1),
        Gather(prompts=(Say("Tapez 1", language="fr-FR"),), num_digits=1),
        action_url="/menu",
    )
    assert document == response(
        '<Say language="fr-FR">Bienvenue</Say><Pause length="1" />'
        '<Gather action="/menu" input="dtmf" method="POST" numDigits="1" timeout="5">'
        '<Say language="fr-FR">Tapez 1</Say></Gather>'
        '<Redirect method="POST">/menu</Redirect>'
    )


def test_say_then_hangup_render_in_order():
    assert render(Say("Au revoir"), Hangup()) == response("<Say>Au revoir</Say><Hangup />")


def test_no_actions_render_an_empty_response():
    assert render() == b'<?xml version="1.0" encoding="UTF-8"?><Response />'


# --- Every combination passes the checker ---------------------------------------

PROMPT_RUNS = {
    "none": (),
    "say": (Say("Bonjour &amp; bienvenue", voice="Polly.Lea-Neural", language="fr-FR"),),
    "all": (Say('Un <break time="1s"/> deux', loop=2), Play("https://cdn.example.com/a.mp3?x=1&y=2"), Pause(3)),
}
ENDINGS = {
    "nothing": (),
    "gather": (Gather(prompts=(Say("Tapez 1"), Pause(), Play("/a.mp3")), input="dtmf speech", hints=("a", "b")),),
    "gather-no-finish-key": (Gather(finish_on_key=""),),
    "dial-number": (
        Dial(DialTarget("number", "+33123456789"), params=(("r", "x"),), whisper_url="/whisper?a=1"),
    ),
    "dial-sip": (Dial(DialTarget("sip", "sip:agent@pbx.example.com"), params=(("X-Reason", "late"),)),),
    "dial-queue": (Dial(DialTarget("queue", "support"), timeout=30, caller_id="+33900000000"),),
    "enqueue": (Enqueue("support", wait_url="/wait", params=(("order", "1"),)),),
    "record": (Record(),),
    "redirect": (Redirect("/poll?n=1&m=2"),),
    "hangup": (Hangup(),),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
@pytest.mark.parametrize("prompts", PROMPT_RUNS.values(), ids=PROMPT_RUNS.keys())
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_every_rendered_combination_passes_the_checker(prompts, ending, method):
    document = render_twiml(prompts + ending, "/step?call=CA1&turn=2", method=method)
    assert validate_twiml(document) == []


# --- The checker catches problems -----------------------------------------------


def test_checker_flags_a_root_that_is_not_response():
    problems = validate_twiml(response("").replace(b"Response", b"Resp"))
    assert problems == ["root element is <Resp>, not <Response>"]


def test_checker_flags_xml_that_does_not_parse():
    (problem,) = validate_twiml(response("<Say>Tom & Jerry</Say>"))
    assert problem.startswith("not well-formed XML")


def test_checker_flags_whitespace_before_the_declaration():
    assert "whitespace before the start of the document" in validate_twiml(b"\n" + response("<Hangup />"))


def test_checker_flags_play_inside_dial():
    problems = validate_twiml(response("<Dial><Play>/a.mp3</Play></Dial>"))
    assert problems == ["Response/Dial[1]/Play[1]: <Play> may not appear inside <Dial>"]


def test_checker_flags_hangup_inside_gather():
    problems = validate_twiml(response("<Gather><Hangup /></Gather>"))
    assert problems == ["Response/Gather[1]/Hangup[1]: <Hangup> may not appear inside <Gather>"]


def test_checker_flags_a_verb_it_does_not_know():
    problems = validate_twiml(response("<Speak>Hello</Speak>"))
    assert problems == ["Response/Speak[1]: <Speak> may not appear inside <Response>"]


def test_checker_flags_say_after_hangup():
    problems = validate_twiml(response("<Hangup /><Say>Hello</Say>"))
    assert problems == ["Response: <Say> after <Hangup> would never be reached"]


def test_checker_allows_one_redirect_right_after_gather():
    assert validate_twiml(response('<Gather /><Redirect method="POST">/step</Redirect>')) == []


def test_checker_flags_a_verb_after_the_redirect_that_follows_gather():
    problems = validate_twiml(response("<Gather /><Redirect>/step</Redirect><Say>Hello</Say>"))
    assert problems == ["Response: <Say> after <Gather> would never be reached"]


def test_checker_flags_an_attribute_in_the_wrong_case():
    problems = validate_twiml(response('<Gather numdigits="1" /><Redirect>/step</Redirect>'))
    assert problems == ["Response/Gather[1]: <Gather> has no attribute 'numdigits' (did you mean 'numDigits'?)"]


def test_checker_flags_an_attribute_the_verb_does_not_have():
    problems = validate_twiml(response('<Hangup reason="busy" />'))
    assert problems == ["Response/Hangup[1]: <Hangup> has no attribute 'reason'"]


def test_checker_flags_a_document_of_64_kb_or_more():
    padding = "x" * (65536 - len(response("<Say></Say>")))
    document = response(f"<Say>{padding}</Say>")
    assert len(document) == 65536
    assert validate_twiml(document) == ["document is 65536 bytes; Twilio refuses 65536 or more"]
    assert validate_twiml(response(f"<Say>{padding[1:]}</Say>")) == []


# --- What the renderer refuses ----------------------------------------------------


def test_malformed_ssml_is_refused():
    with pytest.raises(ValueError, match="not a well-formed XML fragment"):
        render_twiml([Say("Tom & Jerry")], URL)


def test_ssml_that_tries_to_close_the_say_is_refused():
    with pytest.raises(ValueError, match="not a well-formed XML fragment"):
        render_twiml([Say("Hi</Say><Hangup/><Say>")], URL)


def test_element_that_is_not_ssml_inside_say_is_refused():
    with pytest.raises(ValueError, match="<speak> in Say text is not an SSML element"):
        render_twiml([Say("<speak>Hello</speak>")], URL)


def test_document_of_64_kb_or_more_is_refused():
    with pytest.raises(ValueError, match="65536 or more"):
        render_twiml([Say("x" * 65536)], URL)


def test_action_after_hangup_is_refused():
    with pytest.raises(ValueError, match="Say follows Hangup and would never be reached"):
        render_twiml([Hangup(), Say("Hello")], URL)


def test_action_after_gather_is_refused():
    with pytest.raises(ValueError, match="Hangup follows Gather"):
        render_twiml([Gather(), Hangup()], URL)


def test_lookup_is_refused():
    with pytest.raises(ValueError, match="Lookup 'r1' is an effect"):
        render_twiml([Say("Un instant"), Lookup("r1", "order_status", {"order": "100234"})], URL)


def test_enqueue_queue_name_over_64_chars_is_refused():
    with pytest.raises(ValueError, match="queue name must be 1 to 64 chars, got 65"):
        render_twiml([Enqueue("q" * 65)], URL)


def test_enqueue_queue_name_of_64_chars_is_accepted():
    assert b"q" * 64 + b"</Enqueue>" in render(Enqueue("q" * 64))


def test_dial_queue_name_over_64_chars_is_refused():
    with pytest.raises(ValueError, match="queue name must be 1 to 64 chars"):
        render_twiml([Dial(DialTarget("queue", "q" * 65))], URL)


def test_unknown_dial_kind_is_refused():
    with pytest.raises(ValueError, match="unknown dial target kind 'client'"):
        render_twiml([Dial(DialTarget("client", "alice"))], URL)


def test_sip_uri_of_255_chars_is_refused():
    address = "sip:agent@pbx.example.com"
    value = "v" * (255 - len(address) - len("?X-A="))
    with pytest.raises(ValueError, match="SIP URI is 255 chars"):
        render_twiml([Dial(DialTarget("sip", address), params=(("X-A", value),))], URL)
    assert b"<Sip>" in render(Dial(DialTarget("sip", address), params=(("X-A", value[1:]),)))


def test_sip_headers_of_1024_chars_are_refused():
    with pytest.raises(ValueError, match="SIP headers are 1024 chars"):
        render_twiml([Dial(DialTarget("sip", "sip:a@b"), params=(("X-A", "v" * 1020),))], URL)


def test_sip_header_name_that_would_break_the_uri_is_refused():
    with pytest.raises(ValueError, match="SIP header name 'X-A&B'"):
        render_twiml([Dial(DialTarget("sip", "sip:a@b"), params=(("X-A&B", "1"),))], URL)


def test_gather_prompt_that_is_not_say_play_or_pause_is_refused():
    with pytest.raises(ValueError, match="must be Say, Play or Pause, not Hangup"):
        render_twiml([Gather(prompts=(Hangup(),))], URL)


def test_method_other_than_get_or_post_is_refused():
    with pytest.raises(ValueError, match="method must be 'GET' or 'POST'"):
        render_twiml([Hangup()], URL, method="PUT")
