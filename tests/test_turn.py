"""A turn: the engine stepped, its effects performed, until the caller is asked again."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from twisted.internet import defer, task

from ivr.engine import actions as act
from ivr.engine.turn import play_turn, play_turn_async, play_turn_now
from ivr.flow.loader import load_flow

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
ORDER = {"number": "100234", "status": "in_transit", "carrier_name": "Colissimo"}


@pytest.fixture(scope="module")
def flow():
    return load_flow(FIXTURES / "shop.yaml", FIXTURES / "prompts")


def found(lookup, now):
    return {"status": "found", "data": {"order": ORDER}}


@pytest.fixture(scope="module")
def before_the_look_up(flow):
    """A call that has typed its order number, then the key that looks it up."""
    state = play_turn(flow, None, {"type": "start", "call_id": "CA1", "caller": "+33612345678",
                                   "called": "+33100000000", "now": AT}, found).state
    for digits in ("1", "100234"):
        state = play_turn(flow, state, {"type": "digits", "digits": digits, "now": AT}, found).state
    return state, {"type": "digits", "digits": "1", "now": AT}


def test_a_turn_whose_look_up_answers_at_once_is_played_without_a_deferred(flow, before_the_look_up):
    state, event = before_the_look_up
    clock = task.Clock()
    turn = play_turn_now(flow, state, event, found, clock, 5.0,
                         caller_gone=lambda: defer.succeed(False))
    assert not isinstance(turn, defer.Deferred)
    assert [e["node"] for e in turn.node_events][:2] == ["ask_number", "find"]
    waited = []
    defer.ensureDeferred(play_turn_async(flow, state, event, found, clock, 5.0)).addCallback(
        waited.append)
    assert (turn.state, turn.actions, turn.node_events) == (
        waited[0].state, waited[0].actions, waited[0].node_events)
    assert clock.getDelayedCalls() == []


def test_a_look_up_that_answers_later_is_waited_for_on_the_clock(flow, before_the_look_up):
    state, event = before_the_look_up
    clock, answer = task.Clock(), defer.Deferred()
    played = play_turn_now(flow, state, event, lambda lookup, now: answer, clock, 5.0)
    assert isinstance(played, defer.Deferred) and not played.called
    answer.callback(found(None, AT))
    turn = []
    played.addCallback(turn.append)
    assert turn[0].state["vars"]["order"] == ORDER and turn[0].state["waiting"] != "lookup"
    assert clock.getDelayedCalls() == []


def test_a_caller_gone_when_the_look_up_answers_ends_the_call_at_the_look_up(flow, before_the_look_up):
    state, event = before_the_look_up
    turn = play_turn_now(flow, state, event, found, task.Clock(), 5.0,
                         caller_gone=lambda: defer.succeed(True))
    assert turn.actions == [act.Hangup()]
    assert [(e["node"], e["branch"], e["detail"]) for e in turn.node_events][-1] == (
        "find", "hangup", "hung up on hold")


def test_a_performer_that_raises_takes_the_error_branch(flow, before_the_look_up):
    state, event = before_the_look_up

    def broken(lookup, now):
        raise OSError("no database")

    turn = play_turn_now(flow, state, event, broken, None, None)
    [looked] = [e for e in turn.node_events if e["node"] == "find"]
    assert (looked["input"], looked["detail"]) == ("error", "OSError: no database")


@pytest.mark.parametrize("gone", [True, False])
def test_whether_the_caller_is_gone_may_be_told_as_a_plain_flag(flow, before_the_look_up, gone):
    state, event = before_the_look_up
    turn = play_turn_now(flow, state, event, found, task.Clock(), 5.0, caller_gone=lambda: gone)
    assert not isinstance(turn, defer.Deferred)
    assert (turn.actions == [act.Hangup()]) is gone


def test_a_caller_gone_not_known_yet_is_waited_for(flow, before_the_look_up):
    state, event = before_the_look_up
    gone = defer.Deferred()
    played = play_turn_now(flow, state, event, found, task.Clock(), 5.0, caller_gone=lambda: gone)
    assert isinstance(played, defer.Deferred) and not played.called
    gone.callback(True)
    turn = []
    played.addCallback(turn.append)
    assert turn[0].actions == [act.Hangup()]


def test_a_performer_written_as_a_coroutine_is_awaited(flow, before_the_look_up):
    state, event = before_the_look_up
    answer = defer.Deferred()

    async def later(lookup, now):
        return await answer

    clock = task.Clock()
    played = play_turn_now(flow, state, event, later, clock, 5.0)
    assert isinstance(played, defer.Deferred) and not played.called
    answer.callback(found(None, AT))
    turn = []
    played.addCallback(turn.append)
    assert turn[0].state["vars"]["order"] == ORDER
    assert clock.getDelayedCalls() == []
