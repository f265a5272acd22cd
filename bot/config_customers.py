"""The [customers] thresholds and [[segments]] rule definitions of config.toml (wired into bot/config.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.segment_rules import RuleError, parse_rule


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomersSettings(_Section):
    """Lifecycle-stage thresholds (days, counts) and the segment and campaign-health cadence."""

    new_days: int = Field(30, ge=1, le=3650)  # joined this recently → new (unless high potential)
    active_days: int = Field(30, ge=1, le=3650)  # a purchase this recently → active
    at_risk_days: int = Field(60, ge=1, le=3650)  # last purchase up to this long ago → at risk
    dormant_days: int = Field(180, ge=1, le=3650)  # … up to this long ago → dormant; longer (or never) → lost
    high_potential_purchases: int = Field(3, ge=1, le=1000)  # ≥ this many purchases in active_days …
    high_potential_basket_times_mean: float = Field(1.5, gt=0, le=100)  # … and basket > this × the chain mean
    segment_rebuild_minutes: int = Field(60, ge=1, le=10080)  # scheduled rebuild of every segment
    campaign_check_minutes: int = Field(15, ge=1, le=1440)  # send, read back, remind, health checks
    remind_after_hours: float = Field(4, gt=0, le=240)  # a sender who has not confirmed this long → reminder
    confirm_alert_hours: float = Field(12, gt=0, le=240)  # … this long → the owner is told who to chase
    failure_share_alert: float = Field(0.3, ge=0, le=1)  # delivery failures above this share → alert
    redemption_forecast_share: float = Field(0.05, ge=0, le=1)  # redemptions expected per delivered member
    redemption_alert_ratio: float = Field(0.25, ge=0, le=1)  # after 24 h below this × forecast → alert

    @model_validator(mode="after")
    def _ordered(self) -> CustomersSettings:
        if not self.active_days <= self.at_risk_days <= self.dormant_days:
            raise ValueError("active_days ≤ at_risk_days ≤ dormant_days must hold")
        return self


class SegmentConfig(_Section):
    """One [[segments]] entry; the rule is checked by models.segment_rules when the segment is synced."""

    key: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    name: str = Field(min_length=1, max_length=64)
    rule: dict[str, Any]

    @field_validator("rule")
    @classmethod
    def _grammar(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_rule(v)
        except RuleError as err:
            raise ValueError(str(err)) from err
        return v


def unique_segment_keys(segments: tuple[SegmentConfig, ...]) -> None:
    seen: set[str] = set()
    for seg in segments:
        if seg.key in seen:
            raise ValueError(f"segments: duplicate key {seg.key!r}")
        seen.add(seg.key)
