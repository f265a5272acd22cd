"""Property tests for the segment rule grammar: any JSON is either a rule or a RuleError (never a crash), and
through the API any body is 200 or 422, never 500; every rule the grammar accepts compiles and runs."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.segment_rules import METRICS, OPS, STAGES, RuleError, parse_rule
from tests.conftest import AppClient, auth
from tests.factories import Chain

PROPS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SCALARS = st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=True) | st.text(max_size=8)
KEYS = st.sampled_from(["all", "any", "not", "metric", "days", "op", "value", "times_mean", "stage", "tag",
                        "home_store"]) | st.text(max_size=4)
ANY_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                        max_leaves=20)

LEAF = st.one_of(
    st.fixed_dictionaries({"metric": st.sampled_from([m for m in METRICS if m != "days_since_purchase"]),
                           "days": st.integers(1, 400), "op": st.sampled_from(OPS),
                           "value": st.integers(-5, 500) | st.floats(-5, 500)}),
    st.fixed_dictionaries({"metric": st.sampled_from(["purchases", "spend", "avg_basket", "visits"]),
                           "days": st.sampled_from([7, 30, 90]), "op": st.sampled_from(OPS),
                           "times_mean": st.floats(0.1, 5)}),
    st.fixed_dictionaries({"metric": st.just("days_since_purchase"), "op": st.sampled_from(OPS),
                           "value": st.integers(0, 400)}),
    st.builds(lambda s: {"stage": s}, st.sampled_from(STAGES)),
    st.builds(lambda t: {"tag": t}, st.text(min_size=1, max_size=8)),
    st.builds(lambda c: {"home_store": c}, st.sampled_from(["S001", "S404"])),
)
RULES = st.recursive(LEAF, lambda inner: st.one_of(
    st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda x: {"not": x}, inner),
), max_leaves=6)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(data=ANY_JSON)
def test_any_json_is_a_rule_or_a_rule_error(data: Any) -> None:
    try:
        parse_rule(data)
    except RuleError as err:
        assert err.path.startswith("rule")


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(rule=RULES)
def test_every_generated_rule_follows_the_grammar(rule: Any) -> None:
    parse_rule(rule)


@PROPS
@given(rule=RULES | ANY_JSON)
async def test_put_segment_answers_200_or_422_never_500(client: AppClient, chain: Chain, rule: Any) -> None:
    r = await client.put("/api/segments/prop", json={"name": "p", "rule": rule}, headers=auth())
    assert r.status in (200, 422), await r.text()
    if r.status == 422:
        assert (await r.json())["error"].startswith("rule")
