"""The demo flow's scenarios through the fake Vonage, against the real
handler and web resources speaking the Vonage dialect: the same outcomes
and reasons as through Twilio."""

import pytest

from ivr.providers.vonage.dialect import VonageDialect
from ivr.providers.vonage.fake import FakeVonageCall
from tests.provider_support import BASE, play_scenario, scenarios


def _fake(send, caller, called):
    return FakeVonageCall(send, caller, called, BASE, status_path="status")


@pytest.mark.parametrize("scenario", [s for _, s in scenarios()], ids=[i for i, _ in scenarios()])
def test_each_demo_scenario_ends_as_it_says_through_vonage(tmp_path, scenario):
    assert play_scenario(tmp_path, VonageDialect(), _fake, scenario) == []
