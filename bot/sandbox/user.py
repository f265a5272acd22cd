"""The Sandbox: the tenant plus its user side, signed and encrypted callbacks as WeCom sends them (5 s, 3 tries)."""

from __future__ import annotations

import io
import re
import secrets
import string
from datetime import timedelta, timezone

import aiohttp
from PIL import Image, ImageDraw
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.clock import Clock
from bot.sandbox.records import CallbackOutcome, Delivered, SandboxConfig, SandboxError, UserSent
from bot.sandbox.state import Tenant

CHINA = timezone(timedelta(hours=8))
_ENCRYPT_RE = re.compile(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>.*<MsgSignature><!\[CDATA\[(.*?)\]\]>", re.S)


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def sample_jpeg(label: str = "storebot", when: str = "2026:11:24 09:00:00") -> bytes:
    """A small real JPEG (a shelf-coloured picture) with EXIF DateTimeOriginal, as a phone camera makes."""
    image = Image.new("RGB", (320, 240), (236, 240, 245))
    draw = ImageDraw.Draw(image)
    for i, colour in enumerate(((230, 90, 70), (70, 150, 90), (60, 110, 200), (240, 190, 60))):
        draw.rectangle((20 + i * 72, 60, 80 + i * 72, 200), fill=colour)
    draw.text((20, 20), label, fill=(30, 30, 30))
    exif = Image.Exif()
    exif[0x0132] = when  # DateTime
    exif.get_ifd(0x8769)[0x9003] = when  # DateTimeOriginal
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80, exif=exif)
    return out.getvalue()


class Sandbox(Tenant):
    """The whole sandbox: the tenant's API state plus the user side, where every user_* call builds the
    plaintext XML, encrypts it and delivers it to the bot's callback URL."""

    def __init__(self, config: SandboxConfig, clock: Clock | None = None) -> None:
        super().__init__(config, clock)
        self._msg_counter = 0
        self._last_create_time: dict[str, int] = {}

    def _create_time(self, userid: str) -> int:
        """The sandbox clock's second, nudged past the user's previous message unless `unique_create_times` is
        off (WeCom gives two taps in one second the same CreateTime; tests of event dedupe turn it off)."""
        created = int(self.clock.now().timestamp())
        if self.config.unique_create_times:
            created = max(created, self._last_create_time.get(userid, 0) + 1)
        self._last_create_time[userid] = created
        return created

    def _crypto(self) -> WeChatCrypto:
        cfg = self.config
        return WeChatCrypto(cfg.token, cfg.encoding_aes_key, cfg.corp_id)

    def _head(self, userid: str, msgtype: str) -> str:
        if userid not in self.config.users:
            raise SandboxError(f"no user by the id of {userid!r} in the sandbox")
        created = self._create_time(userid)
        return (f"<ToUserName>{cdata(self.config.corp_id)}</ToUserName><FromUserName>{cdata(userid)}</FromUserName>"
                f"<CreateTime>{created}</CreateTime><MsgType>{cdata(msgtype)}</MsgType>"
                f"<AgentID>{self.config.agent_id}</AgentID>")

    def _msg_id(self) -> str:
        self._msg_counter += 1
        return str(7_300_000_000_000_000_000 + secrets.randbelow(10**12) * 1000 + self._msg_counter % 1000)

    async def _deliver(self, inner: str, repeat: int = 1) -> CallbackOutcome:
        """POST the encrypted envelope; each of `repeat` deliveries gets up to callback_tries attempts."""
        url = self.config.callback_url
        if not url:
            raise SandboxError("the sandbox has no callback_url to deliver to")
        plain = f"<xml>{inner}</xml>"
        nonce = "".join(secrets.choice(string.digits) for _ in range(10))
        timestamp = str(int(self.clock.now().timestamp()))
        outer = self._crypto().encrypt_message(plain, nonce, timestamp)
        match = _ENCRYPT_RE.search(outer)
        if match is None:
            raise SandboxError("wechatpy produced an envelope without Encrypt/MsgSignature")
        encrypt, signature = match.group(1), match.group(2)
        body = (f"<xml><ToUserName>{cdata(self.config.corp_id)}</ToUserName>"
                f"<AgentID>{cdata(str(self.config.agent_id))}</AgentID><Encrypt>{cdata(encrypt)}</Encrypt></xml>")
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        outcome = CallbackOutcome(status=None, tries=0, body="")
        timeout = aiohttp.ClientTimeout(total=self.config.callback_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(max(1, repeat)):
                for _attempt in range(self.config.callback_tries):
                    outcome.tries += 1
                    try:
                        async with http.post(url, params=params, data=body.encode("utf-8"),
                                             headers={"Content-Type": "text/xml"}) as resp:
                            outcome.status, outcome.body = resp.status, await resp.text()
                    except (TimeoutError, aiohttp.ClientError):
                        outcome.status, outcome.body = None, ""
                        continue
                    if outcome.status == 200:
                        break
        outcome.ok = outcome.status == 200
        return outcome

    def _note(self, userid: str, kind: str, summary: str, outcome: CallbackOutcome,
              media_id: str | None = None) -> CallbackOutcome:
        self.user_sent.append(UserSent(userid, kind, summary, self.clock.now(), outcome.status,
                                       seq=self.next_seq(), media_id=media_id))
        return outcome

    async def verify_url(self) -> CallbackOutcome:
        """The GET echostr handshake WeCom does when the callback URL is saved; ok when the plain echo came back."""
        url = self.config.callback_url
        if not url:
            raise SandboxError("the sandbox has no callback_url to verify")
        echo = str(secrets.randbelow(10**19))
        nonce = str(secrets.randbelow(10**9))
        timestamp = str(int(self.clock.now().timestamp()))
        outer = self._crypto().encrypt_message(echo, nonce, timestamp)
        match = _ENCRYPT_RE.search(outer)
        if match is None:
            raise SandboxError("wechatpy produced an envelope without Encrypt/MsgSignature")
        params = {"msg_signature": match.group(2), "timestamp": timestamp, "nonce": nonce,
                  "echostr": match.group(1)}
        timeout = aiohttp.ClientTimeout(total=self.config.callback_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url, params=params) as resp:
            body = await resp.text()
            return CallbackOutcome(resp.status, 1, body, ok=resp.status == 200 and body == echo)

    async def user_text(self, userid: str, content: str, *, repeat: int = 1) -> CallbackOutcome:
        inner = (self._head(userid, "text") + f"<Content>{cdata(content)}</Content>"
                 f"<MsgId>{self._msg_id()}</MsgId>")
        return self._note(userid, "text", content, await self._deliver(inner, repeat))

    async def user_image(self, userid: str, jpeg: bytes | None = None, *,
                         repeat: int = 1) -> CallbackOutcome:
        """Put a real JPEG in the media store and send it as an image message (PicUrl + MediaId)."""
        head = self._head(userid, "image")
        if jpeg is None:
            taken = self.clock.now().astimezone(CHINA).strftime("%Y:%m:%d %H:%M:%S")
            jpeg = sample_jpeg(f"{userid}  {taken}", taken)  # ASCII: the default font has no CJK
        media = self.store_media("image", "photo.jpg", "image/jpeg", jpeg)
        base = self.config.public_url or "http://127.0.0.1:8090"
        pic_url = f"{base.rstrip('/')}/sandbox/pic/{media.media_id}"
        inner = (head + f"<PicUrl>{cdata(pic_url)}</PicUrl><MediaId>{cdata(media.media_id)}</MediaId>"
                 f"<MsgId>{self._msg_id()}</MsgId>")
        return self._note(userid, "image", "[图片]", await self._deliver(inner, repeat), media.media_id)

    async def user_location(self, userid: str, lat: float, lng: float, *, label: str = "",
                            scale: int = 15, repeat: int = 1) -> CallbackOutcome:
        inner = (self._head(userid, "location") + f"<Location_X>{lat}</Location_X><Location_Y>{lng}</Location_Y>"
                 f"<Scale>{scale}</Scale><Label>{cdata(label)}</Label><MsgId>{self._msg_id()}</MsgId>")
        summary = f"[位置] {label or f'{lat:.4f},{lng:.4f}'}"
        return self._note(userid, "location", summary, await self._deliver(inner, repeat))

    def _event(self, userid: str, event: str, key: str = "") -> str:
        return self._head(userid, "event") + f"<Event>{cdata(event)}</Event><EventKey>{cdata(key)}</EventKey>"

    async def user_location_event(self, userid: str, lat: float, lng: float, *, precision: float = 30.0,
                                  repeat: int = 1) -> CallbackOutcome:
        inner = (self._head(userid, "event") + f"<Event>{cdata('LOCATION')}</Event><Latitude>{lat}</Latitude>"
                 f"<Longitude>{lng}</Longitude><Precision>{precision}</Precision>")
        return await self._deliver(inner, repeat)

    async def user_enter(self, userid: str, *, repeat: int = 1) -> CallbackOutcome:
        return await self._deliver(self._event(userid, "enter_agent"), repeat)

    async def user_menu_click(self, userid: str, key: str, *, repeat: int = 1) -> CallbackOutcome:
        return self._note(userid, "click", f"[菜单] {key}", await self._deliver(self._event(userid, "click", key),
                                                                              repeat))

    async def user_scan(self, userid: str, key: str, result: str, *, scan_type: str = "barcode",
                        waitmsg: bool = True, repeat: int = 1) -> CallbackOutcome:
        event = "scancode_waitmsg" if waitmsg else "scancode_push"
        inner = (self._event(userid, event, key) + f"<ScanCodeInfo><ScanType>{cdata(scan_type)}</ScanType>"
                 f"<ScanResult>{cdata(result)}</ScanResult></ScanCodeInfo>")
        return self._note(userid, "scan", f"[扫码] {result}", await self._deliver(inner, repeat))

    def find_card(self, userid: str, key: str) -> Delivered:
        """The newest card the user holds with a tappable button of that key."""
        for card in reversed(self.cards_for(userid)):
            if key in (k for _, k in card.buttons):
                return card
        raise SandboxError(f"{userid!r} has no card with a button {key!r} to tap")

    async def user_click(self, userid: str, key: str, *, card: Delivered | None = None,
                         selected: dict[str, list[str]] | None = None, repeat: int = 1) -> CallbackOutcome:
        """Tap a card button: template_card_event with a fresh single-use ResponseCode bound to that card."""
        target = card or self.find_card(userid, key)
        if key not in (k for _, k in target.buttons):
            raise SandboxError(f"card {target.task_id!r} has no tappable button {key!r}")
        code = self.issue_code(target)
        items = "".join(
            f"<SelectedItem><QuestionKey>{cdata(q)}</QuestionKey><OptionIds>"
            + "".join(f"<OptionId>{cdata(o)}</OptionId>" for o in options)
            + "</OptionIds></SelectedItem>"
            for q, options in (selected or {}).items()
        )
        inner = (self._event(userid, "template_card_event", key) + f"<TaskId>{cdata(target.task_id or '')}</TaskId>"
                 f"<CardType>{cdata(str(target.card.get('card_type', '')))}</CardType>"
                 f"<ResponseCode>{cdata(code)}</ResponseCode>"
                 + (f"<SelectedItems>{items}</SelectedItems>" if items else ""))
        text = next((t for t, k in target.buttons if k == key), key)
        return self._note(userid, "click", f"[点击] {text}", await self._deliver(inner, repeat))
