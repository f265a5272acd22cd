"""The simulated tenant: tokens, deliveries, rate windows, response codes, media and chats, behind the API routes."""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import random
import secrets
from collections import deque
from datetime import datetime, timedelta

from bot.clock import Clock, SystemClock
from bot.sandbox.limits import (
    APP_TYPES,
    CHAT_TYPES,
    MEDIA_TYPES,
    ROBOT_TYPES,
    check_card,
    check_content,
    media_limit,
)
from bot.sandbox.records import (
    INTERACTIVE_CARDS,
    JSON,
    ApiError,
    Delivered,
    Media,
    ResponseCode,
    SandboxConfig,
    Suppressed,
    UserSent,
)


class Tenant:
    """Everything the fake WeCom knows; the aiohttp routes in api.py translate HTTP to these methods."""

    def __init__(self, config: SandboxConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rng = random.Random(config.seed)
        self.deliveries: list[Delivered] = []
        self.user_sent: list[UserSent] = []
        self.media: dict[str, Media] = {}
        self.codes: dict[str, ResponseCode] = {}
        self.chats: dict[str, tuple[str, str, list[str]]] = {}  # chatid -> (name, owner, members)
        self.menus: dict[int, JSON] = {}
        self.oauth_codes: dict[str, tuple[str, datetime]] = {}  # web-login code -> (userid or "", issued at)
        self.token_requests = 0
        self.duplicates_suppressed = 0
        self.faults_injected = {"errcode": 0, "http_502": 0, "slow": 0}
        self._tokens: dict[str, tuple[datetime, bool]] = {}  # token -> (expires_at, revoked)
        self._current_token: str | None = None
        self._sent_windows: dict[str, deque[datetime]] = {}
        self._robot_windows: dict[str, deque[datetime]] = {}
        self.media_hold: asyncio.Event | None = None  # set: media/get answers only once it is set (tests)
        self.slow_hold: asyncio.Event | None = None  # set: slow answers wait for it, not slow_seconds (tests)
        self.slow_holding = asyncio.Event()  # set once slow_hold holds an answer (the work behind it is done)
        self.suppressed: list[Suppressed] = []  # what the duplicate check swallowed, oldest first
        self._recent_bodies: dict[str, tuple[datetime, str, str | None]] = {}  # _dup_key -> (at, msgid, code)
        self._task_ids: set[str] = set()
        self._seq = 0
        self._msgid = 0
        for chatid, members in config.chats.items():
            self.create_chat(chatid, chatid, members[0] if members else "", members)

    # ---- bookkeeping -------------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_msgid(self) -> str:
        self._msgid += 1
        return f"sbx{self._msgid:08d}{secrets.token_hex(6)}"

    def messages_for(self, userid: str) -> list[Delivered]:
        """What the user's phone shows, oldest first: app messages to them and messages in their chats."""
        chats = {cid for cid, (_, _, members) in self.chats.items() if userid in members}
        robot_chats = {key for key, cid in self.config.robot_keys.items() if cid in chats}
        return [
            d for d in self.deliveries
            if not d.dropped and (
                (d.channel == "app" and d.to == userid)
                or (d.channel == "appchat" and d.to in chats)
                or (d.channel == "robot" and d.to in robot_chats)
            )
        ]

    def cards_for(self, userid: str) -> list[Delivered]:
        """Template cards the user received by app message (read .card, .buttons, .replace_name for the view)."""
        return [d for d in self.messages_for(userid) if d.channel == "app" and d.msgtype == "template_card"]

    def create_chat(self, chatid: str, name: str, owner: str, members: list[str]) -> None:
        self.chats[chatid] = (name, owner, list(members))

    # ---- tokens ------------------------------------------------------------------------------------------------
    def get_token(self, corpid: str, secret: str) -> JSON:
        if not hmac.compare_digest(corpid, self.config.corp_id):
            raise ApiError(40013, "invalid corpid")
        if not hmac.compare_digest(secret, self.config.corp_secret):
            raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
        now = self.clock.now()
        current = self._current_token
        if current is None or self._tokens[current][0] <= now or self._tokens[current][1]:
            current = secrets.token_urlsafe(48)
            self._tokens[current] = (now + timedelta(seconds=self.config.token_ttl_seconds), False)
            self._current_token = current
        self.token_requests += 1
        expires_in = int((self._tokens[current][0] - now).total_seconds())
        return {"errcode": 0, "errmsg": "ok", "access_token": current, "expires_in": expires_in}

    def check_token(self, token: str | None) -> None:
        if not token:
            raise ApiError(41001, "access_token missing")
        found = self._tokens.get(token)
        if found is None or found[1]:
            raise ApiError(40014, "invalid access_token")
        if found[0] <= self.clock.now():
            raise ApiError(42001, "access_token expired")

    def revoke_tokens(self) -> None:
        """WeCom may invalidate a token early: every issued token now answers 40014."""
        self._tokens = {t: (exp, True) for t, (exp, _) in self._tokens.items()}
        self._current_token = None

    # ---- sending -----------------------------------------------------------------------------------------------
    def _check_window(self, body: JSON) -> timedelta | None:
        """The duplicate check's look-back for this request (None: the check is off)."""
        if not body.get("enable_duplicate_check"):
            return None
        try:
            interval = int(body.get("duplicate_check_interval") or 1800)
        except (TypeError, ValueError) as err:
            raise ApiError(40058, "invalid parameter: duplicate_check_interval must be 1..14400") from err
        if not 0 < interval <= 4 * 3600:
            raise ApiError(40058, "invalid parameter: duplicate_check_interval must be 1..14400")
        return timedelta(seconds=interval)

    def _dup_key(self, channel: str, to: str, msgtype: str, body: JSON) -> str:
        """What "identical" means for one recipient (config.duplicate_key)."""
        if self.config.duplicate_key == "request":
            content: JSON = {k: v for k, v in body.items() if k not in ("touser", "toparty", "totag", "chatid")}
        else:
            content = {"msgtype": msgtype, msgtype: body.get(msgtype)}
        return json.dumps([channel, to, content], sort_keys=True, ensure_ascii=False)

    def _earlier(self, key: str, window: timedelta | None) -> tuple[str, str | None] | None:
        """The earlier identical message's (msgid, response_code) when it falls inside the window."""
        seen = self._recent_bodies.get(key)
        if window is None or seen is None or self.clock.now() - seen[0] >= window:
            return None
        return seen[1], seen[2]

    def _remember(self, key: str, msgid: str, code: str | None, checked: bool) -> None:
        if checked or self.config.duplicate_counts_unchecked:
            self._recent_bodies[key] = (self.clock.now(), msgid, code)

    def _suppress(self, channel: str, to: str, msgtype: str, body: JSON, earlier: str) -> None:
        self.duplicates_suppressed += 1
        self.suppressed.append(Suppressed(channel, to, msgtype, copy.deepcopy(body), earlier, self.clock.now()))

    def _within_member_budget(self, userid: str) -> bool:
        now = self.clock.now()
        window = self._sent_windows.setdefault(userid, deque())
        while window and now - window[0] >= timedelta(hours=1):
            window.popleft()
        last_minute = sum(1 for t in window if now - t < timedelta(minutes=1))
        if last_minute >= self.config.member_per_minute or len(window) >= self.config.member_per_hour:
            return False
        window.append(now)
        return True

    def _record(self, channel: str, to: str, msgtype: str, body: JSON, msgid: str, code: str | None,
                dropped: bool = False) -> Delivered:
        delivered = Delivered(msgid=msgid, channel=channel, to=to, msgtype=msgtype, payload=copy.deepcopy(body),
                              response_code=code, at=self.clock.now(), dropped=dropped, seq=self.next_seq())
        self.deliveries.append(delivered)
        return delivered

    def _check_media(self, body: JSON, msgtype: str) -> None:
        """image/voice/video/file messages must name media this tenant holds (40007 otherwise)."""
        if msgtype in MEDIA_TYPES:
            self.get_media(str(body[msgtype].get("media_id", "")))

    def _check_agent(self, body: JSON) -> None:
        try:
            agentid = int(body.get("agentid", 0))
        except (TypeError, ValueError) as err:
            raise ApiError(40056, "invalid agentid") from err
        if agentid != self.config.agent_id:
            raise ApiError(40056, "invalid agentid")

    def send_message(self, body: JSON) -> JSON:
        """message/send: validate, resolve recipients, dedupe, budget per member, record each recipient."""
        self._check_agent(body)
        msgtype = check_content(body, APP_TYPES)
        self._check_media(body, msgtype)
        touser = str(body.get("touser") or "")
        if not touser and not body.get("toparty") and not body.get("totag"):
            raise ApiError(82001, "All touser & toparty & totag invalid")
        names = [u for u in touser.split("|") if u]
        if len(names) > 1000:
            raise ApiError(40058, "invalid parameter: touser holds at most 1000 users")
        if names == ["@all"] or str(body.get("toparty") or "") in ("1", "@all"):
            names = list(self.config.users)
        users = [u for u in dict.fromkeys(names) if u in self.config.users]
        invalid = [u for u in dict.fromkeys(names) if u not in self.config.users]
        if not users:
            raise ApiError(81013, "user & party & tag all invalid")
        window = self._check_window(body)
        keys = {u: self._dup_key("app", u, msgtype, body) for u in users}
        answer: JSON = {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid), "invalidparty": "",
                        "invalidtag": "", "unlicenseduser": ""}
        earlier = {u: seen for u in users if (seen := self._earlier(keys[u], window)) is not None}
        for u, seen in earlier.items():
            self._suppress("app", u, msgtype, body, seen[0])
        users = [u for u in users if u not in earlier]
        if not users:  # a duplicate for everyone: the earlier msgid, delivered to nobody
            first = next(iter(earlier.values()))
            answer["msgid"] = first[0]
            if first[1]:
                answer["response_code"] = first[1]
            return answer
        card = body.get("template_card") if msgtype == "template_card" else None
        task_id = str(card.get("task_id")) if isinstance(card, dict) and card.get("task_id") else None
        if task_id and self.config.unique_task_id:
            if task_id in self._task_ids:
                raise ApiError(40058, f"invalid parameter: task_id {task_id} already used by this app")
            self._task_ids.add(task_id)
        interactive = isinstance(card, dict) and card.get("card_type") in INTERACTIVE_CARDS
        code = secrets.token_urlsafe(24) if interactive else None
        msgid = self._new_msgid()
        records = [self._record("app", u, msgtype, body, msgid, code, dropped=not self._within_member_budget(u))
                   for u in users]
        if code:
            self.codes[code] = ResponseCode(code, self.clock.now(), [r for r in records if not r.dropped])
            answer["response_code"] = code
        for u in users:
            self._remember(keys[u], msgid, code, window is not None)
        answer["msgid"] = msgid
        return answer

    def issue_code(self, delivered: Delivered) -> str:
        """A fresh single-use response code for a card a user just tapped."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = ResponseCode(code, self.clock.now(), [delivered])
        return code

    def update_card(self, body: JSON) -> JSON:
        """message/update_template_card: spend the response code, record the edit on the cards it reaches."""
        self._check_agent(body)
        found = self.codes.get(str(body.get("response_code") or ""))
        if found is None:
            raise ApiError(40058, "invalid parameter: response_code is invalid")
        if found.used:
            raise ApiError(42022, "response_code has been used")
        if self.clock.now() - found.issued_at > timedelta(hours=self.config.response_code_ttl_hours):
            raise ApiError(42022, "response_code expired")
        if isinstance(body.get("button"), dict):
            update: JSON = {"button": {"replace_name": str(body["button"].get("replace_name", ""))}}
        elif isinstance(body.get("template_card"), dict):
            check_card(body["template_card"])
            update = {"template_card": body["template_card"]}
        else:
            raise ApiError(40058, "invalid parameter: button or template_card is required")
        raw_userids = body.get("userids") or []
        if not isinstance(raw_userids, list) or len(raw_userids) > 1000:
            raise ApiError(40058, "invalid parameter: userids must be a list of at most 1000 userids")
        found.used = True
        task_ids = {c.task_id for c in found.cards}
        userids = [u for u in raw_userids if isinstance(u, str)]
        same_task = [d for d in self.deliveries if d.msgtype == "template_card" and d.channel == "app"
                     and not d.dropped and d.task_id in task_ids]
        if body.get("atall"):
            targets = same_task
        elif userids:
            targets = [d for d in same_task if d.to in userids]
        else:
            targets = found.cards
        for card in targets:
            card.updates.append(update)
        invalid = [u for u in userids if u not in self.config.users]
        return {"errcode": 0, "errmsg": "ok", "invaliduser": invalid}

    def chat_send(self, body: JSON) -> JSON:
        chatid = str(body.get("chatid") or "")
        if chatid not in self.chats:
            raise ApiError(86003, f"chat not exist: {chatid}")
        msgtype = check_content(body, CHAT_TYPES)
        self._check_media(body, msgtype)
        window = self._check_window(body)
        key = self._dup_key("appchat", chatid, msgtype, body)
        seen = self._earlier(key, window)
        if seen is not None:
            self._suppress("appchat", chatid, msgtype, body, seen[0])
            return {"errcode": 0, "errmsg": "ok"}
        msgid = self._new_msgid()
        self._record("appchat", chatid, msgtype, body, msgid, None)
        self._remember(key, msgid, None, window is not None)
        return {"errcode": 0, "errmsg": "ok"}

    def chat_create(self, body: JSON) -> JSON:
        members = [u for u in body.get("userlist") or [] if isinstance(u, str)]
        if len(members) < 2:
            raise ApiError(40058, "invalid parameter: userlist needs at least 2 members")
        unknown = [u for u in members if u not in self.config.users]
        if unknown:
            raise ApiError(60111, f"userid not found: {unknown[0]}")
        chatid = str(body.get("chatid") or f"wr{secrets.token_hex(10)}")
        if chatid in self.chats:
            raise ApiError(86215, f"chat exists: {chatid}")
        owner = str(body.get("owner") or members[0])
        self.create_chat(chatid, str(body.get("name") or ""), owner, members)
        return {"errcode": 0, "errmsg": "ok", "chatid": chatid}

    def robot_send(self, key: str, body: JSON) -> JSON:
        """webhook/send: 20 per minute per robot key, then 45009 and nothing delivered."""
        if key not in self.config.robot_keys:
            raise ApiError(93000, "invalid webhook url")
        msgtype = check_content(body, ROBOT_TYPES, robot=True)
        now = self.clock.now()
        window = self._robot_windows.setdefault(key, deque())
        while window and now - window[0] >= timedelta(minutes=1):
            window.popleft()
        if len(window) >= self.config.robot_per_minute:
            raise ApiError(45009, "api freq out of limit")
        window.append(now)
        self._record("robot", key, msgtype, body, self._new_msgid(), None)
        return {"errcode": 0, "errmsg": "ok"}

    # ---- media -------------------------------------------------------------------------------------------------
    def store_media(self, kind: str, filename: str, content_type: str, content: bytes) -> Media:
        if len(content) <= 5:
            raise ApiError(40006, "invalid file size: a file must be larger than 5 bytes")
        if len(content) > media_limit(kind):
            code = {"image": 40009, "voice": 40010, "video": 40011}.get(kind, 40006)
            raise ApiError(code, f"invalid {kind} size: over {media_limit(kind)} bytes")
        media = Media(f"sbx-{kind}-{secrets.token_urlsafe(24)}", kind, filename, content_type, content,
                      self.clock.now())
        self.media[media.media_id] = media
        return media

    def get_media(self, media_id: str) -> Media:
        media = self.media.get(media_id)
        if media is None or self.clock.now() - media.created_at > timedelta(seconds=self.config.media_ttl_seconds):
            raise ApiError(40007, "invalid media_id")
        return media

    # ---- faults ------------------------------------------------------------------------------------------------
    def draw_fault(self) -> tuple[str | None, bool]:
        """Decide one API answer's fate: ("502" | "errcode" | None, slow)."""
        roll = self.rng.random()
        fault: str | None = None
        if roll < self.config.http_502_rate:
            fault = "http_502"
        elif roll < self.config.http_502_rate + self.config.fault_rate:
            fault = "errcode"
        slow = self.config.slow_rate > 0 and self.rng.random() < self.config.slow_rate
        if fault:
            self.faults_injected[fault] += 1
        if slow:
            self.faults_injected["slow"] += 1
        return fault, slow
