"""Settings: config.toml read once, overlaid with STOREBOT_<SECTION>_<KEY>, validated into frozen objects."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config_customers import CustomersSettings, SegmentConfig, unique_segment_keys
from bot.errors import ConfigError

ENV_PREFIX = "STOREBOT_"
Role = Literal["staff", "manager", "supervisor", "admin"]
EscalationTarget = Literal["manager", "supervisor", "admin"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    admin_token: SecretStr = SecretStr("change-me")
    data_dir: str = "data"  # photos and other files the bot keeps; relative to the working directory
    max_callback_body_bytes: int = Field(64 * 1024, ge=1024)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    # signs dashboard session cookies (bot/signing.py); empty = a key derived from admin_token (never the token)
    session_secret: SecretStr = SecretStr("")
    dashboard_session_hours: float = Field(12.0, gt=0, le=24 * 30)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///storebot.db"
    auto_migrate: bool = True
    echo: bool = False
    pool_size: int = Field(5, ge=1)

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class WeComSettings(_Section):
    corp_id: str = ""
    agent_id: int = 1000002
    secret: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr = SecretStr("")
    api_base: str = "https://qyapi.weixin.qq.com"
    oauth_base: str = "https://open.weixin.qq.com"  # WeCom's web login (the console); the demo points it at the sandbox
    callback_path: str = "/wecom/callback"
    max_timestamp_skew_seconds: int = Field(300, ge=0)
    request_timeout_seconds: float = Field(10.0, gt=0)
    robot_key: SecretStr = SecretStr("")  # optional group-robot webhook key for store-wide notices
    create_menu: bool = False  # call menu/create at start (scan buttons for 入库/出库/盘点)
    # client retries inside one call (-1, 45033, HTTP 5xx, timeouts): attempts, full-jitter backoff base and cap
    retry_attempts: int = Field(4, ge=1, le=10)
    retry_base_seconds: float = Field(0.2, gt=0)
    retry_max_seconds: float = Field(3.0, gt=0)
    token_margin_seconds: int = Field(300, ge=0)  # refresh the access token this long before it expires
    rate_limit_wait_seconds: float = Field(60.0, gt=0)  # 45009: WeCom blocks for the rest of the window

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key_length(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if raw and len(raw) != 43:
            raise ValueError("must be exactly 43 characters")
        return v

    @field_validator("callback_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with /")
        return v


MAX_LINE_QTY = 10_000  # one line's absurd quantity: the default cap of sales and counts, the cap of transfers


class PosSettings(_Section):
    webhook_secret: SecretStr = SecretStr("")
    max_line_qty: int = Field(MAX_LINE_QTY, ge=1)  # a single sale line above this is refused as absurd
    max_sale_age_days: int = Field(35, ge=1, le=3650)  # a sale (or receipt) dated further back gets 422
    max_sale_ahead_hours: float = Field(24, ge=0, le=720)  # a sale (or receipt) dated further ahead gets 422


class RulesSettings(_Section):
    no_movement_days: int = Field(3, ge=1)
    transfer_receipt_timeout_hours: float = Field(24, gt=0)
    transfer_approval_remind_hours: float = Field(4, gt=0)
    transfer_approval_escalate_hours: float = Field(12, gt=0)
    transfer_receipt_admin_hours: float = Field(24, gt=0)  # after the supervisor was told, this long → the admin
    transfer_check_minutes: float = Field(10, gt=0)  # how often the transfer reminders / escalations are checked
    count_approval_units: int = Field(5, ge=0)  # |counted - system| above this AND above the percent needs approval
    count_approval_percent: float = Field(20.0, ge=0)
    accuracy_tolerance_units: int = Field(0, ge=0)  # a counted line within this of system counts as accurate
    conversation_ttl_minutes: int = Field(10, ge=1)  # how long "scan, then type the quantity" waits
    evaluate_every_minutes: int = Field(15, ge=1)


class EscalationStep(_Section):
    to: EscalationTarget
    after_minutes: int = Field(ge=0)


def _default_chain() -> tuple[EscalationStep, ...]:
    return (
        EscalationStep(to="manager", after_minutes=0),
        EscalationStep(to="supervisor", after_minutes=120),
        EscalationStep(to="admin", after_minutes=360),
    )


class AlertSettings(_Section):
    digest_seconds: int = Field(300, ge=0)
    quiet_hours: str = "22:00-08:00"
    critical_kinds: tuple[str, ...] = ("negative_stock",)
    escalation: dict[str, tuple[EscalationStep, ...]] = Field(default_factory=lambda: {"default": _default_chain()})
    digest_max_items: int = Field(8, ge=1, le=6 * 10)
    # store-local time of the supervisors' morning digest (the region's first store's zone); "" = none
    supervisor_digest_time: str = Field("08:30", pattern=r"^(|([01]?\d|2[0-3]):[0-5]\d)$")
    supervisor_digest_catch_up_hours: int = Field(4, ge=1, le=23)  # sent late after downtime, within this

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, v: str) -> str:
        if v:
            parse_quiet_hours(v)
        return v

    def digest_time(self) -> time | None:
        if not self.supervisor_digest_time:
            return None
        hour, minute = self.supervisor_digest_time.split(":")
        return time(int(hour), int(minute))

    def quiet_window(self) -> tuple[time, time] | None:
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None

    def chain_for(self, kind: str) -> tuple[EscalationStep, ...]:
        return self.escalation.get(kind) or self.escalation.get("default") or _default_chain()


class TaskRulesSettings(_Section):
    remind_before_minutes: int = Field(15, ge=0)
    overdue_notify_after_minutes: int = Field(15, ge=0)
    location_window_minutes: int = Field(30, ge=1)
    default_geofence_meters: int = Field(300, ge=0)  # 0 = no geofence check
    improvement_plan_due_days: int = Field(2, ge=1)
    cycle_count_size: int = Field(10, ge=1)
    push_jitter_seconds: int = Field(90, ge=0)  # WeCom asks not to send exactly at :00 / :30


class TaskTemplate(_Section):
    key: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    title: str = Field(min_length=1, max_length=64)
    schedule: str  # cron, store-local
    assignee_role: Literal["staff", "manager"] = "staff"
    proof: Literal["photo", "count", "confirm", "text"] = "confirm"
    due_minutes: int = Field(60, ge=1)
    points: int = Field(10, ge=0)
    body: str = ""
    stores: tuple[str, ...] = ()  # empty = every store (narrowed by regions if given)
    regions: tuple[str, ...] = ()
    geofence_meters: int | None = Field(None, ge=0)
    count_skus: int | None = Field(None, ge=1)  # count tasks: size of the cycle-count set

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as err:
            raise ValueError(f"not a 5-field cron expression: {err}") from err
        return v


class OutboxSettings(_Section):
    max_attempts: int = Field(8, ge=1)
    batch_size: int = Field(2000, ge=1)  # rows per claim; a slow batch renews its lease while it sends
    concurrency: int = Field(8, ge=1)
    per_member_per_minute: int = Field(30, ge=1)
    per_member_per_hour: int = Field(1000, ge=1)
    robot_per_minute: int = Field(20, ge=1)
    duplicate_check_interval_seconds: int = Field(1800, ge=1, le=4 * 3600)
    lease_seconds: int = Field(60, ge=5)
    poll_seconds: float = Field(1.0, gt=0)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    background: bool = True  # run the sending loop in the server; tests turn it off and call drain()
    card_update_max_age_hours: float = Field(72.0, gt=0)  # a response_code older than this is not used


class RetentionSettings(_Section):
    """How long finished rows and files are kept. Every floor is 3 days: longer than WeCom's 72-hour card window
    (a card's response_code) and its 3-day media lifetime; defaults leave room for audits."""

    enabled: bool = True
    inbox_days: int = Field(14, ge=3, le=3650)  # processed callbacks (done / failed); pending ones are never pruned
    outbox_days: int = Field(30, ge=3, le=3650)  # sent / failed / cancelled messages; pending ones are never pruned
    locations_days: int = Field(30, ge=3, le=3650)  # user_locations
    photos_days: int = Field(180, ge=3, le=3650)  # task photos (rows and files) not tied to an open task
    every_minutes: int = Field(10, ge=1, le=24 * 60)  # how often the prune job runs
    batch_size: int = Field(500, ge=1, le=5000)  # rows per delete transaction
    max_batches: int = Field(20, ge=1, le=1000)  # per table per run: a big backlog is worked off over many runs


class ConsoleSettings(_Section):
    session_hours: float = Field(12.0, gt=0, le=24 * 30)  # a console login lasts this long
    reload_seconds: float = Field(30.0, gt=0, le=60)  # how often a server re-reads settings changed in the console


class SchedulerSettings(_Section):
    enabled: bool = True


class InboxSettings(_Section):
    workers: int = Field(1, ge=0, le=32)  # 0 = accept-only instance: store callbacks, process nothing
    max_attempts: int = Field(5, ge=1)  # then the event is marked failed and logged
    poll_seconds: float = Field(1.0, gt=0)  # the loop also wakes at once when a callback is stored
    backoff_base_seconds: float = Field(2.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    wecom: WeComSettings = WeComSettings()
    pos: PosSettings = PosSettings()
    rules: RulesSettings = RulesSettings()
    alerts: AlertSettings = AlertSettings()
    task_rules: TaskRulesSettings = TaskRulesSettings()
    outbox: OutboxSettings = OutboxSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    inbox: InboxSettings = InboxSettings()
    retention: RetentionSettings = RetentionSettings()
    console: ConsoleSettings = ConsoleSettings()
    tasks: tuple[TaskTemplate, ...] = ()
    customers: CustomersSettings = CustomersSettings()
    segments: tuple[SegmentConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_task_keys(self) -> Settings:
        seen: set[str] = set()
        for t in self.tasks:
            if t.key in seen:
                raise ValueError(f"tasks: duplicate key {t.key!r}")
            seen.add(t.key)
        unique_segment_keys(self.segments)
        return self

    def template(self, key: str) -> TaskTemplate | None:
        return next((t for t in self.tasks if t.key == key), None)

    def require_for_serve(self) -> None:
        """The production server cannot talk to WeCom without these; say which one is missing."""
        required = {
            "wecom.corp_id": self.wecom.corp_id,
            "wecom.secret": self.wecom.secret.get_secret_value(),
            "wecom.token": self.wecom.token.get_secret_value(),
            "wecom.encoding_aes_key": self.wecom.encoding_aes_key.get_secret_value(),
        }
        for key, value in required.items():
            if not value:
                raise ConfigError(key, "is required by `storebot serve` and is empty")

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        values = [
            self.server.admin_token,
            self.server.session_secret,
            self.wecom.secret,
            self.wecom.token,
            self.wecom.encoding_aes_key,
            self.wecom.robot_key,
            self.pos.webhook_secret,
        ]
        out = [v.get_secret_value() for v in values if len(v.get_secret_value()) >= 4]
        password = re.search(r"://[^:/@]+:([^@]+)@", self.database.url)
        if password:
            out.append(password.group(1))
        return out


def parse_quiet_hours(value: str) -> tuple[time, time]:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if not m:
        raise ValueError('expected "HH:MM-HH:MM", e.g. "22:00-08:00"')
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    try:
        return time(h1, m1), time(h2, m2)
    except ValueError as err:
        raise ValueError(f"bad time: {err}") from err


def _env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, list[str]]:
    """Apply STOREBOT_<SECTION>_<KEY> over the file's values; return which keys came from the environment."""
    applied: dict[str, list[str]] = {}
    for section_name, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key in model.model_fields:
            var = f"{ENV_PREFIX}{section_name}_{key}".upper()
            if var not in env:
                continue
            raw = env[var]
            value: Any = raw
            if raw[:1] in "[{":
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError:
                    value = raw
            section = data.setdefault(section_name, {})
            if not isinstance(section, dict):
                raise ConfigError(section_name, "must be a table")
            section[key] = value
            applied.setdefault(f"{section_name}.{key}", []).append(var)
    return applied


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any), overlay the environment and validate; ConfigError names the bad key."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError as err:
            raise ConfigError("--config", f"file not found: {p}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(str(p), f"not valid TOML: {err}") from err
    from_env = _env_overrides(data, env)
    return settings_from_dict(data, from_env)


def settings_from_dict(data: dict[str, Any], from_env: dict[str, list[str]] | None = None) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        origin = (from_env or {}).get(".".join(str(p) for p in first["loc"][:2]))
        where = f" (from {origin[0]})" if origin else ""
        raise ConfigError(key, f"{first['msg']}{where}") from err


def resolve_config_path(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """--config, else STOREBOT_CONFIG, else ./config.toml (None when that default does not exist)."""
    env = os.environ if env is None else env
    if cli_value:
        return Path(cli_value)
    if env.get("STOREBOT_CONFIG"):
        return Path(env["STOREBOT_CONFIG"])
    default = Path("config.toml")
    return default if default.exists() else None
