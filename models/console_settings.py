"""Settings edited in the console: overrides over config.toml's seed, their audit trail, and safety-stock edits.

config.toml stays the seed of defaults; a row in `setting_overrides` replaces one editable key. `effective()` lays
the overrides over the seed through the same pydantic models config.toml goes through, so the console can never
store a value the file would refuse. Every change writes a `setting_changes` row: who, when, from what, to what.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import ForeignKey, Index, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config import AlertSettings, RulesSettings, Settings, TaskTemplate
from models.base import Base
from models.stock import StockLevel, ensure_level

SAFETY_STOCK = "safety_stock"
SAFETY_MAX = 1_000_000


@dataclass(frozen=True)
class Editable:
    name: str
    label: str  # what the audit list and the forms call it
    section: type[BaseModel] | None  # the model a value is validated by (None: the task template list)


EDITABLE: dict[str, Editable] = {
    e.name: e
    for e in (
        Editable("rules.no_movement_days", "滞销天数（多少天没有动销算滞销）", RulesSettings),
        Editable("rules.count_approval_units", "盘点差异审批：相差件数", RulesSettings),
        Editable("rules.count_approval_percent", "盘点差异审批：相差百分比", RulesSettings),
        Editable("alerts.quiet_hours", "免打扰时段", AlertSettings),
        Editable("alerts.escalation", "预警升级链", AlertSettings),
        Editable("tasks", "任务模板", None),
    )
}


class SettingOverride(Base):
    """One editable key's value set in the console (JSON); absent = the config.toml value."""

    __tablename__ = "setting_overrides"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(64))


class SettingChange(Base):
    """The audit trail: one row per change of a setting or of one store×SKU safety stock."""

    __tablename__ = "setting_changes"
    __table_args__ = (Index("ix_setting_changes_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    userid: Mapped[str] = mapped_column(String(64))
    person: Mapped[str] = mapped_column(String(128))
    setting: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(160), default="")  # "S001 A001" for a safety stock, else ""
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    old_value: Mapped[str] = mapped_column(Text)
    new_value: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(160), default="")  # "form" or the imported file's name


class SettingInvalid(ValueError):
    """A value config.toml's rules refuse; the message names the key and says why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def current_value(settings: Settings, name: str) -> Any:
    """The plain (JSON-able) value of an editable key in these settings."""
    if name == "tasks":
        return [t.model_dump(mode="json", exclude_defaults=True) | {"key": t.key} for t in settings.tasks]
    section, _, key = name.partition(".")
    return getattr(settings, section).model_dump(mode="json")[key]


def effective(seed: Settings, overrides: dict[str, Any]) -> Settings:
    """The seed with the overrides laid over it, each validated as config.toml would be; SettingInvalid names the
    first key that fails."""
    update: dict[str, Any] = {}
    for section_name, model in (("rules", RulesSettings), ("alerts", AlertSettings)):
        mine = {k.partition(".")[2]: v for k, v in overrides.items() if k.startswith(section_name + ".")}
        if not mine:
            continue
        base = getattr(seed, section_name).model_dump(mode="python")
        try:
            update[section_name] = model.model_validate({**base, **mine})
        except ValidationError as err:
            key = str(err.errors()[0]["loc"][0]) if err.errors()[0]["loc"] else ""
            raise SettingInvalid(f"{section_name}.{key}" if key else section_name, _first_error(err)) from err
    if "tasks" in overrides:
        update["tasks"] = parse_templates(overrides["tasks"])
    return seed.model_copy(update=update) if update else seed


def parse_templates(raw: Any) -> tuple[TaskTemplate, ...]:
    """A list of task templates under config.toml's rules (each a [[tasks]] table, keys unique)."""
    if not isinstance(raw, list):
        raise SettingInvalid("tasks", "must be a list of templates")
    out: list[TaskTemplate] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        try:
            template = TaskTemplate.model_validate(item)
        except ValidationError as err:
            raise SettingInvalid(f"tasks.{i}", _first_error(err)) from err
        if template.key in seen:
            raise SettingInvalid("tasks", f"duplicate key {template.key!r}")
        seen.add(template.key)
        out.append(template)
    return tuple(out)


def check(seed: Settings, overrides: dict[str, Any], name: str, value: Any) -> Settings:
    """The settings that would result from setting `name` to `value` (raises SettingInvalid)."""
    if name not in EDITABLE:
        raise SettingInvalid(name, "cannot be edited in the console")
    return effective(seed, {**overrides, name: value})


async def load_overrides(session: AsyncSession) -> tuple[dict[str, Any], str]:
    """Every override and a fingerprint of them (changes whenever any row is set, changed or removed)."""
    rows = (await session.execute(select(SettingOverride).order_by(SettingOverride.name))).scalars().all()
    digest = hashlib.sha256()
    values: dict[str, Any] = {}
    for row in rows:
        digest.update(f"{row.name}\0{row.version}\0{row.value}\0".encode())
        if row.name in EDITABLE:
            values[row.name] = json.loads(row.value)
    return values, digest.hexdigest()


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


async def save_setting(
    session: AsyncSession, seed: Settings, name: str, value: Any, *, userid: str, person: str, now: datetime
) -> bool:
    """Validate and store one key (False when it already had this value); audited. The caller commits."""
    overrides, _ = await load_overrides(session)
    before = effective(seed, overrides)
    after = check(seed, overrides, name, value)
    old, new = current_value(before, name), current_value(after, name)
    if old == new:
        return False
    row = await session.get(SettingOverride, name, with_for_update=True)
    if row is None:
        session.add(SettingOverride(name=name, value=_text(value), version=1, updated_at=now, updated_by=userid))
    else:
        row.value, row.version, row.updated_at, row.updated_by = _text(value), row.version + 1, now, userid
    session.add(SettingChange(at=now, userid=userid, person=person, setting=name, scope="", store_id=None,
                              old_value=_text(old), new_value=_text(new), source="form"))
    return True


async def set_safety_stock(
    session: AsyncSession, *, store_id: int, sku_id: int, value: int, scope: str, userid: str, person: str,
    now: datetime, source: str = "form",
) -> bool:
    """One store×SKU safety stock (0..SAFETY_MAX); False when unchanged. Audited; the caller commits."""
    if not 0 <= value <= SAFETY_MAX:
        raise SettingInvalid(SAFETY_STOCK, f"must be a whole number from 0 to {SAFETY_MAX}")
    await ensure_level(session, store_id, sku_id)
    stmt = select(StockLevel).where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id)
    level = (await session.execute(stmt.with_for_update().execution_options(populate_existing=True))).scalar_one()
    old = level.safety_stock
    if old == value:
        return False
    level.safety_stock = value
    session.add(SettingChange(at=now, userid=userid, person=person, setting=SAFETY_STOCK, scope=scope,
                              store_id=store_id, old_value=str(old), new_value=str(value), source=source[:160]))
    return True


async def recent_changes(session: AsyncSession, *, store_ids: frozenset[int] | None, limit: int = 200,
                         before_id: int | None = None) -> list[SettingChange]:
    """The newest audit rows; with store_ids, only safety-stock changes of those stores and chain-wide keys."""
    stmt = select(SettingChange).order_by(SettingChange.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(SettingChange.id < before_id)
    if store_ids is not None:
        stmt = stmt.where((SettingChange.store_id.is_(None)) | (SettingChange.store_id.in_(store_ids)))
    return list((await session.execute(stmt)).scalars())

