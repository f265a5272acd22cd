"""Reading the console's settings forms: any text in, a value or a Chinese sentence saying what to fix, never an
exception. The values then go through config.toml's own pydantic rules (models.console_settings.check)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import parse_quiet_hours

MAX_FIELD = 2000
ROLE_WORDS = {"manager": "manager", "店长": "manager", "supervisor": "supervisor", "督导": "supervisor",
              "admin": "admin", "总部": "admin", "管理员": "admin"}
ROLE_LABELS = {"manager": "店长", "supervisor": "督导", "admin": "总部"}
ASSIGNEES = {"staff": "店员", "manager": "店长"}
PROOFS = {"photo": "拍照", "count": "盘点", "confirm": "确认", "text": "文字"}
KIND_LABELS = {"default": "默认", "low_stock": "低于安全库存", "negative_stock": "负库存", "no_movement": "滞销",
               "campaign": "营销活动"}


@dataclass(frozen=True)
class Parsed:
    value: Any


@dataclass(frozen=True)
class Invalid:
    message: str


Result = Parsed | Invalid


def _clean(raw: str | None) -> str:
    """NFKC (full-width digits and colons become ASCII), trimmed; NUL and other control characters removed."""
    text = unicodedata.normalize("NFKC", raw or "")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()


def whole(raw: str | None, label: str, *, lo: int, hi: int) -> Result:
    text = _clean(raw)
    if text.endswith(("天", "件", "分钟", "分")):
        text = text.rstrip("天件分钟").strip()
    if not text:
        return Invalid(f"请填写{label}。")
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(hi)) or not lo <= int(text) <= hi:
        return Invalid(f"{label}要填 {lo} 到 {hi} 之间的整数。")
    return Parsed(int(text))


def number(raw: str | None, label: str, *, lo: float, hi: float) -> Result:
    text = _clean(raw).rstrip("%").strip()
    if not text:
        return Invalid(f"请填写{label}。")
    if not re.fullmatch(r"\d{1,7}(\.\d{1,4})?", text) or not lo <= float(text) <= hi:
        return Invalid(f"{label}要填 {lo:g} 到 {hi:g} 之间的数。")
    value = float(text)
    return Parsed(int(value) if value.is_integer() else value)


def quiet_hours(raw: str | None) -> Result:
    text = _clean(raw).replace("～", "-").replace("~", "-").replace("—", "-").replace("到", "-")
    if text in ("", "无", "不设", "none"):
        return Parsed("")
    try:
        parse_quiet_hours(text)
    except ValueError:
        return Invalid("免打扰时段要写成“22:00-08:00”这样；不设就留空。")
    return Parsed(re.sub(r"\s+", "", text))


def escalation_text(chains: Mapping[str, Any]) -> str:
    """The stored chains as the textarea shows them: one line per alert kind."""
    lines = []
    for kind, steps in chains.items():
        parts = [f"{ROLE_LABELS.get(s['to'], s['to'])} {s['after_minutes']}" for s in steps]
        lines.append(f"{kind}: " + ", ".join(parts))
    return "\n".join(lines)


def escalation(raw: str | None) -> Result:
    """Lines like "default: 店长 0, 督导 120, 总部 360" (minutes after the alert) → {kind: [{to, after_minutes}]}."""
    text = _clean(raw)
    if len(text) > MAX_FIELD:
        return Invalid("升级链太长了，请精简后再保存。")
    chains: dict[str, list[dict[str, Any]]] = {}
    for number_, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        kind, sep, rest = line.partition(":")
        kind = kind.strip()
        if not sep or not re.fullmatch(r"[a-z_]{1,32}", kind):
            return Invalid(f"第 {number_} 行要以预警类型开头，例如“default: 店长 0, 督导 120”。")
        if kind in chains:
            return Invalid(f"第 {number_} 行：{kind} 写了两次。")
        steps: list[dict[str, Any]] = []
        for part in re.split(r"[,，;；]", rest):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\S+?)\s*(\d{1,5})\s*(分钟|分|min)?", part)
            if m is None or m.group(1) not in ROLE_WORDS:
                return Invalid(f"第 {number_} 行的“{part[:20]}”看不懂：每一步写“店长 0”“督导 120”“总部 360”（分钟）。")
            steps.append({"to": ROLE_WORDS[m.group(1)], "after_minutes": int(m.group(2))})
        if not steps:
            return Invalid(f"第 {number_} 行没有写通知谁。")
        if any(b["after_minutes"] < a["after_minutes"] for a, b in zip(steps, steps[1:], strict=False)):
            return Invalid(f"第 {number_} 行：后面一步的分钟数不能比前面的小。")
        chains[kind] = steps
    if "default" not in chains:
        return Invalid("至少要有一行 default（其他预警类型没写时用它）。")
    return Parsed(chains)


def template(form: Mapping[str, str], existing: Mapping[str, Any] | None, store_codes: frozenset[str]) -> Result:
    """One task template from its form; fields the form does not show (regions, geofence, …) keep their value."""
    key = _clean(form.get("key"))
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", key):
        return Invalid("编号只能用英文字母、数字、下划线或横线（最多 64 个）。")
    title = _clean(form.get("title"))
    if not 1 <= len(title) <= 64:
        return Invalid("请填写任务名称（最多 64 个字）。")
    schedule = " ".join(_clean(form.get("schedule")).split())
    if len(schedule.split(" ")) != 5:
        return Invalid("时间表要写成 5 段的 cron，例如每天 9 点：“0 9 * * *”。")
    role = _clean(form.get("assignee_role"))
    if role not in ASSIGNEES:
        return Invalid("请选择由谁完成（店员或店长）。")
    proof = _clean(form.get("proof"))
    if proof not in PROOFS:
        return Invalid("请选择完成方式（拍照、盘点、确认或文字）。")
    due = whole(form.get("due_minutes"), "限时（分钟）", lo=1, hi=7 * 24 * 60)
    if isinstance(due, Invalid):
        return due
    points = whole(form.get("points"), "积分", lo=0, hi=1000)
    if isinstance(points, Invalid):
        return points
    stores = [s for s in re.split(r"[\s,，、;；]+", _clean(form.get("stores")).upper()) if s]
    unknown = [s for s in stores if s not in store_codes]
    if unknown:
        return Invalid(f"没有这些门店：{'、'.join(unknown[:5])[:60]}。门店留空表示全部门店。")
    body = _clean(form.get("body"))
    if len(body) > 500:
        return Invalid("说明最多 500 个字。")
    value = dict(existing or {})
    value.update({"key": key, "title": title, "schedule": schedule, "assignee_role": role, "proof": proof,
                  "due_minutes": due.value, "points": points.value, "stores": sorted(set(stores)), "body": body})
    return Parsed(value)
