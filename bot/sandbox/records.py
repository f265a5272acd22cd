"""What the sandbox remembers: its config, delivered messages, media, response codes and callback outcomes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSON = dict[str, Any]
INTERACTIVE_CARDS = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})
MORE_INFO = "https://open.work.weixin.qq.com/devtool/query?e="


@dataclass
class SandboxConfig:
    """How the simulated tenant is set up; mutable so a harness can point callback_url at the app it starts."""

    corp_id: str = "wwsandboxcorp0001"
    corp_secret: str = "sandbox-secret"
    agent_id: int = 1000002
    token: str = "sandboxToken"
    encoding_aes_key: str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    callback_url: str | None = None
    users: dict[str, str] = field(default_factory=dict)  # userid -> name
    chats: dict[str, list[str]] = field(default_factory=dict)  # group chats that exist at start: chatid -> members
    corp_name: str = "样例连锁"
    token_ttl_seconds: int = 7200
    response_code_ttl_hours: float = 72.0
    media_ttl_seconds: int = 3 * 24 * 3600
    member_per_minute: int = 30
    member_per_hour: int = 1000
    robot_per_minute: int = 20
    robot_keys: dict[str, str] = field(default_factory=lambda: {"sandbox-robot-key": ""})  # key -> chatid or ""
    unique_task_id: bool = True  # WeCom refuses a second card with the same task_id from one app
    fault_rate: float = 0.0
    http_502_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 6.0
    slow_paths: list[str] = field(default_factory=list)  # where slow answers happen ([] = every /cgi-bin/ path)
    seed: int | None = None
    callback_timeout_seconds: float = 5.0
    callback_tries: int = 3
    public_url: str = ""  # how the bot reaches this sandbox (PicUrl points here); "" = learn from the first API call
    # WeCom's duplicate check (wecom-api.md §3). "content": the same msgtype and message body to the same user
    # (the other recipients, agentid and the check's own fields do not matter); "request": the whole request JSON
    # but touser, per user. The window is the new request's duplicate_check_interval, looking back.
    duplicate_key: str = "content"
    duplicate_counts_unchecked: bool = True  # a message sent with the check off still counts as the earlier one
    media_slow_seconds: float = 0.0  # media/get answers this much later (a slow download), after other faults
    unique_create_times: bool = True  # nudge a user's CreateTime past their previous one; False: as WeCom does


@dataclass
class Delivered:
    """One message as one recipient (user, chat or robot) got it: payload is the whole request body as sent;
    updates hold later card edits, oldest first."""

    msgid: str
    channel: str  # "app", "appchat" or "robot"
    to: str  # userid, chatid or robot key
    msgtype: str
    payload: JSON
    response_code: str | None
    at: datetime
    dropped: bool = False
    updates: list[JSON] = field(default_factory=list)
    seq: int = 0

    @property
    def task_id(self) -> str | None:
        card = self.payload.get("template_card")
        return str(card.get("task_id")) if isinstance(card, dict) and card.get("task_id") else None

    @property
    def card(self) -> JSON:
        """The template card as the phone shows it now: the last whole-card update, else the original."""
        current: JSON = copy.deepcopy(self.payload.get("template_card") or {})
        for update in self.updates:
            if "template_card" in update:
                current = copy.deepcopy(update["template_card"])
        return current

    @property
    def replace_name(self) -> str | None:
        """Set once a button update greyed the buttons out; a later whole-card update sets it to that card's
        `replace_text` (a button_interaction card sent with it shows its buttons greyed with that text), or
        clears it."""
        name: str | None = None
        for update in self.updates:
            if "button" in update:
                name = str(update["button"].get("replace_name", ""))
            elif "template_card" in update:
                text = update["template_card"].get("replace_text")
                name = str(text) if text else None
        return name

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(text, key) of the buttons still tappable."""
        if self.replace_name is not None:
            return []
        return [(str(b.get("text", "")), str(b.get("key", ""))) for b in self.card.get("button_list") or []]


@dataclass
class Suppressed:
    """A message the duplicate check swallowed: answered errcode 0 with the earlier msgid, delivered to nobody."""

    channel: str  # "app" or "appchat"
    to: str
    msgtype: str
    payload: JSON
    earlier_msgid: str
    at: datetime


@dataclass
class Media:
    media_id: str
    kind: str
    filename: str
    content_type: str
    content: bytes
    created_at: datetime


@dataclass
class ResponseCode:
    """A single-use permission to edit the cards it was issued for."""

    code: str
    issued_at: datetime
    cards: list[Delivered]
    used: bool = False


@dataclass
class CallbackOutcome:
    """What happened when the sandbox called the bot: last HTTP status (None: no answer), attempts, last body."""

    status: int | None
    tries: int
    body: str
    ok: bool = False


@dataclass
class UserSent:
    """Something a user sent from the phone, shown on the right side of their chat."""

    userid: str
    kind: str
    summary: str
    at: datetime
    status: int | None
    seq: int = 0
    media_id: str | None = None


class SandboxError(Exception):
    """A test or the phone page asked the sandbox for something impossible (e.g. a button no card has)."""


class ApiError(Exception):
    """Raised inside request handling; becomes WeCom's JSON error answer."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        super().__init__(f"{errcode}: {errmsg}")


def error_body(errcode: int, errmsg: str, hint: str, ip: str) -> JSON:
    """WeCom's error shape, errmsg with its real suffix style."""
    return {
        "errcode": errcode,
        "errmsg": f"{errmsg}, hint: [{hint}], from ip: {ip}, more info at {MORE_INFO}{errcode}",
    }
