"""The segment rule grammar (CONTRACT.md): any JSON in, a typed rule tree out, or RuleError naming the place."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

METRICS = ("purchases", "spend", "avg_basket", "visits", "views", "days_since_purchase")
OPS = (">=", ">", "<=", "<", "==", "!=")
STAGES = ("new", "active", "high_potential", "at_risk", "dormant", "lost")
MAX_DEPTH = 12
MAX_NODES = 100
MAX_DAYS = 3650
MAX_VALUE = 1e12


class RuleError(ValueError):
    """A rule that does not follow the grammar; path says where (`rule.all[1].op`)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class All:
    items: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    item: Rule


@dataclass(frozen=True)
class Metric:
    metric: str
    days: int  # 0 for days_since_purchase (it has no window)
    op: str
    value: float | None
    times_mean: float | None


@dataclass(frozen=True)
class Stage:
    stage: str


@dataclass(frozen=True)
class Tag:
    tag: str


@dataclass(frozen=True)
class HomeStore:
    code: str


Rule = All | AnyOf | Not | Metric | Stage | Tag | HomeStore


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def node(self, data: Any, path: str, depth: int) -> Rule:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(path, f"a rule may hold at most {MAX_NODES} conditions")
        if depth > MAX_DEPTH:
            raise RuleError(path, f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(data, dict):
            raise RuleError(path, "must be an object such as {\"all\": [...]} or {\"metric\": ...}")
        for combinator in ("all", "any"):
            if combinator in data:
                self._only(data, path, {combinator})
                items = data[combinator]
                if not isinstance(items, list) or not items:
                    raise RuleError(f"{path}.{combinator}", "must be a non-empty list of conditions")
                parsed = tuple(self.node(item, f"{path}.{combinator}[{i}]", depth + 1) for i, item in enumerate(items))
                return All(parsed) if combinator == "all" else AnyOf(parsed)
        if "not" in data:
            self._only(data, path, {"not"})
            return Not(self.node(data["not"], f"{path}.not", depth + 1))
        if "metric" in data:
            return self.metric(data, path)
        for key in ("stage", "tag", "home_store"):
            if key in data:
                self._only(data, path, {key})
                value = data[key]
                if not isinstance(value, str) or not value or len(value) > 64:
                    raise RuleError(f"{path}.{key}", "must be a non-empty string of at most 64 characters")
                if key == "stage":
                    if value not in STAGES:
                        raise RuleError(f"{path}.stage", f"must be one of {', '.join(STAGES)}")
                    return Stage(value)
                return Tag(value) if key == "tag" else HomeStore(value)
        keys = ", ".join(sorted(str(k) for k in data)[:5]) or "nothing"
        raise RuleError(path, f"expected one of all, any, not, metric, stage, tag, home_store; got {keys}")

    @staticmethod
    def _only(data: dict[str, Any], path: str, allowed: set[str]) -> None:
        extra = sorted(str(k) for k in data if k not in allowed)
        if extra:
            raise RuleError(f"{path}.{extra[0]}", "unexpected key here")

    def metric(self, data: dict[str, Any], path: str) -> Metric:
        metric = data["metric"]
        if metric not in METRICS:
            raise RuleError(f"{path}.metric", f"must be one of {', '.join(METRICS)}")
        windowless = metric == "days_since_purchase"
        allowed = {"metric", "op", "value"} | (set() if windowless else {"days", "times_mean"})
        self._only(data, path, allowed)
        days = 0
        if not windowless:
            raw = data.get("days")
            if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_DAYS:
                raise RuleError(f"{path}.days", f"must be a whole number of days from 1 to {MAX_DAYS}")
            days = raw
        op = data.get("op")
        if op not in OPS:
            raise RuleError(f"{path}.op", f"must be one of {' '.join(OPS)}")
        has_value, has_times = "value" in data, "times_mean" in data
        if has_value == has_times:
            raise RuleError(path, "needs exactly one of value or times_mean")
        if has_times:
            times = data["times_mean"]
            if not _number(times) or not 0 < times <= 1000:
                raise RuleError(f"{path}.times_mean", "must be a number above 0 and at most 1000")
            return Metric(metric, days, op, None, float(times))
        value = data["value"]
        if not _number(value) or abs(value) > MAX_VALUE:
            raise RuleError(f"{path}.value", "must be a number")
        if windowless and (not isinstance(value, int) or value < 0):
            raise RuleError(f"{path}.value", "must be a whole number of days, 0 or more")
        return Metric(metric, days, op, float(value), None)


def parse_rule(data: Any, path: str = "rule") -> Rule:
    """The typed tree for a rule, or RuleError(path, reason) for the first place that breaks the grammar."""
    try:
        return _Parser().node(data, path, 0)
    except RecursionError as err:  # a JSON nested thousands deep: refuse, never crash
        raise RuleError(path, "nested too deeply") from err


def windows(rule: Rule) -> set[tuple[str, int]]:
    """The (source, days) aggregates a rule needs: source is purchases, visit or view."""
    if isinstance(rule, All | AnyOf):
        return set().union(*(windows(r) for r in rule.items))
    if isinstance(rule, Not):
        return windows(rule.item)
    if isinstance(rule, Metric) and rule.metric != "days_since_purchase":
        source = {"visits": "visit", "views": "view"}.get(rule.metric, "purchases")
        return {(source, rule.days)}
    return set()
