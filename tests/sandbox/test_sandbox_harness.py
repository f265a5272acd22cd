"""The harness end to end: the sandbox calls the real app, the app answers through the sandbox's API."""

from __future__ import annotations

from tests.factories import Chain
from tests.fixtures_sandbox import Harness


async def test_help_reply_reaches_the_phone(harness: Harness, chain: Chain) -> None:
    outcome = await harness.sandbox.user_text("s1", "帮助")
    assert outcome.ok and outcome.tries == 1
    await harness.settle()
    [reply] = harness.texts_for("s1")
    assert "盘点" in reply
    assert harness.sandbox.token_requests == 1


async def test_url_verification_against_the_real_endpoint(harness: Harness) -> None:
    outcome = await harness.sandbox.verify_url()
    assert outcome.ok, outcome


async def test_a_callback_repeated_three_times_is_answered_once(harness: Harness, chain: Chain) -> None:
    outcome = await harness.sandbox.user_text("m1", "帮助", repeat=3)
    assert outcome.ok and outcome.tries == 3
    await harness.settle()
    assert len(harness.texts_for("m1")) == 1


async def test_say_and_photo_helpers_settle(harness: Harness, chain: Chain) -> None:
    await harness.say("m2", "help")
    assert len(harness.texts_for("m2")) == 1
    outcome = await harness.photo("m2")
    assert outcome.ok and harness.sandbox.user_sent[-1].media_id in harness.sandbox.media


async def test_asking_the_same_thing_twice_gets_two_answers(harness: Harness, chain: Chain) -> None:
    """WeCom's duplicate check would swallow the second identical reply; it is meant for resends of one row."""
    await harness.say("s1", "帮助")
    await harness.say("s1", "帮助")
    replies = harness.texts_for("s1")
    assert len(replies) == 2
    assert replies[0] == replies[1]
