"""The project's own async WeCom API client on aiohttp (wechatpy's client blocks the event loop)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from bot.clock import Clock
from bot.config import WeComSettings
from bot.errors import WeComAPIError, WeComConnectionError

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40014, 42001, 41001})  # token invalid / expired / missing: refresh once, retry once
TRANSIENT_ERRORS = frozenset({-1, 45033})  # system busy, concurrency limit: back off and retry
RATE_LIMIT_ERRORS = frozenset({45009, 130101})  # frequency limit: blocked for the rest of the window
_SECRET_PARAMS = re.compile(r"(access_token|corpsecret|key)=[^&\s'\"]+")

Body = Callable[[], Any]  # builds the request body afresh per attempt (a used FormData cannot be sent again)
# A JSON body, or a function that builds it afresh for every try of the call (the outbox sets the duplicate
# check's interval at the moment each try goes out).
JsonBody = dict[str, Any] | Callable[[], dict[str, Any]]


def redact(text: str) -> str:
    """Blank tokens, secrets and robot keys out of anything that may carry a URL."""
    return _SECRET_PARAMS.sub(r"\1=***", text)


class WeComRateLimited(WeComAPIError):
    """45009 (or a robot's "send too fast"): nothing gets through until the window ends; defer, don't retry."""

    def __init__(self, errcode: int, errmsg: str, api: str, retry_after_seconds: float) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(errcode, errmsg, api)


class _Transient(Exception):
    """One attempt failed in a way worth retrying inside the call; carries the error to raise at the end."""

    def __init__(self, error: Exception) -> None:
        self.error = error


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime


@dataclass(frozen=True)
class SendResult:
    msgid: str | None
    response_code: str | None
    invalid_users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str
    filename: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    disposition: str | None
    body: bytes
    data: dict[str, Any] | None = None  # the decoded JSON answer, when there is one


class WeComClient:
    """One app's WeCom API: access token cached with single-flight refresh, bounded retries, typed answers.

    Every method raises WeComAPIError (errcode != 0 after the client's own retries; WeComRateLimited for 45009)
    or WeComConnectionError (network, timeout, HTTP 5xx after the retries).
    """

    def __init__(self, session: aiohttp.ClientSession, settings: WeComSettings, clock: Clock) -> None:
        self._session = session
        self._settings = settings
        self._clock = clock
        self._base = settings.api_base.rstrip("/")
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()

    # ---- the calls -------------------------------------------------------------------------------------------

    async def send_message(self, body: JsonBody) -> SendResult:
        """message/send; body without agentid (added here)."""
        data = await self._post("/cgi-bin/message/send", self._with_agent(body))
        invalid = str(data.get("invaliduser") or "")
        return SendResult(
            msgid=data.get("msgid") or None,
            response_code=data.get("response_code") or None,
            invalid_users=tuple(u for u in invalid.split("|") if u),
        )

    async def update_template_card(self, body: JsonBody) -> None:
        """message/update_template_card; body without agentid (added here)."""
        await self._post("/cgi-bin/message/update_template_card", self._with_agent(body))

    async def appchat_send(self, body: dict[str, Any]) -> None:
        await self._post("/cgi-bin/appchat/send", body)

    async def webhook_send(self, key: str, body: dict[str, Any]) -> None:
        """Group robot: the key is in the URL, no access token."""
        payload = _json_bytes(body)
        await self._call("POST", "/cgi-bin/webhook/send", params={"key": key}, body=lambda: payload, auth=False)

    async def get_media(self, media_id: str) -> Media:
        """media/get: the raw bytes; a JSON body is WeCom's error answer."""
        answer = await self._call_raw("GET", "/cgi-bin/media/get", params={"media_id": media_id})
        filename = None
        if answer.disposition:
            _, params = parse_content_disposition(answer.disposition)
            filename = content_disposition_filename(params, "filename")
        return Media(content=answer.body, content_type=answer.content_type, filename=filename)

    async def upload_media(self, kind: str, filename: str, content: bytes) -> str:
        """media/upload?type=image|voice|video|file, multipart field `media`; returns the media_id."""

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData(quote_fields=False)  # a Chinese filename as UTF-8, as browsers send it
            data.add_field("media", content, filename=filename, content_type="application/octet-stream")
            return data

        answer = await self._call("POST", "/cgi-bin/media/upload", params={"type": kind}, body=form)
        return str(answer["media_id"])

    async def get_user(self, userid: str) -> dict[str, Any]:
        return await self._call("GET", "/cgi-bin/user/get", params={"userid": userid})

    async def get_user_info(self, code: str) -> dict[str, Any]:
        """Web login: the `code` WeCom's authorize page gave the browser → {"userid": ...} for a member of the
        corp ({"openid": ...} for anyone else). A code works once, for five minutes (else errcode 40029)."""
        return await self._call("GET", "/cgi-bin/auth/getuserinfo", params={"code": code})

    async def list_departments(self, department_id: int | None = None) -> list[dict[str, Any]]:
        params = {"id": str(department_id)} if department_id is not None else {}
        data = await self._call("GET", "/cgi-bin/department/list", params=params)
        departments: list[dict[str, Any]] = data.get("department", [])
        return departments

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self._post("/cgi-bin/menu/create", menu, params={"agentid": str(self._settings.agent_id)})

    async def get_token(self) -> str:
        """The cached access token, fetched (once, however many callers wait) when missing or near expiry."""
        token = self._token
        if token is not None and self._clock.now() < token.expires_at:
            return token.value
        async with self._token_lock:
            token = self._token
            if token is not None and self._clock.now() < token.expires_at:
                return token.value
            self._token = token = await self._fetch_token()
            return token.value

    def invalidate_token(self, stale: str) -> None:
        """Forget `stale` unless another caller already replaced it."""
        if self._token is not None and self._token.value == stale:
            self._token = None

    # ---- plumbing --------------------------------------------------------------------------------------------

    async def _fetch_token(self) -> AccessToken:
        params = {"corpid": self._settings.corp_id, "corpsecret": self._settings.secret.get_secret_value()}
        data = await self._call("GET", "/cgi-bin/gettoken", params=params, auth=False)
        expires_in = int(data.get("expires_in", 7200))
        margin = min(float(self._settings.token_margin_seconds), expires_in / 10)
        log.info("WeCom access token fetched, valid %d s", expires_in)
        return AccessToken(str(data["access_token"]), self._clock.now() + timedelta(seconds=expires_in - margin))

    def _with_agent(self, body: JsonBody) -> JsonBody:
        agent = self._settings.agent_id
        if isinstance(body, dict):
            return {**body, "agentid": agent}
        build = body
        return lambda: {**build(), "agentid": agent}

    async def _post(self, path: str, body: JsonBody, params: dict[str, str] | None = None) -> dict[str, Any]:
        if isinstance(body, dict):
            payload = _json_bytes(body)
            return await self._call("POST", path, params=params, body=lambda: payload)
        build = body
        return await self._call("POST", path, params=params, body=lambda: _json_bytes(build()))

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Body | None = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        answer = await self._call_raw(method, path, params=params, body=body, auth=auth, expect_json=True)
        return answer.data or {}

    async def _call_raw(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Body | None = None,
        auth: bool = True, expect_json: bool = False,
    ) -> _Answer:
        """One API call with the retry policy: token errors refresh once and retry once; -1, 45033, 5xx and
        timeouts back off (capped exponential, full jitter) for a few attempts; everything else is final."""
        s = self._settings
        token_retried = False
        attempt = 0
        while True:
            attempt += 1
            token = await self.get_token() if auth else None
            query = {**(params or {}), **({"access_token": token} if token else {})}
            try:
                answer = await self._attempt(method, path, query, body, expect_json=expect_json)
            except _Transient as transient:
                if attempt >= s.retry_attempts:
                    raise transient.error from None
                delay = random.uniform(0, min(s.retry_max_seconds, s.retry_base_seconds * 2 ** (attempt - 1)))
                log.info("%s; retry %d in %.2f s", transient.error, attempt, delay)
                await asyncio.sleep(delay)
                continue
            except WeComAPIError as err:
                if err.errcode in TOKEN_ERRORS and token is not None and not token_retried:
                    token_retried = True
                    attempt -= 1  # a stale token is not the call's fault: it keeps its attempts
                    self.invalidate_token(token)
                    log.info("WeCom %s: errcode %d, refreshing the access token once", path, err.errcode)
                    continue
                raise
            return answer

    async def _attempt(
        self, method: str, path: str, query: dict[str, str], body: Body | None, *, expect_json: bool
    ) -> _Answer:
        try:
            async with asyncio.timeout(self._settings.request_timeout_seconds):
                data = body() if body is not None else None
                headers = {"Content-Type": "application/json"} if isinstance(data, bytes) else None
                async with self._session.request(
                    method, self._base + path, params=query, data=data, headers=headers
                ) as resp:
                    raw = await resp.read()
                    answer = _Answer(
                        resp.status, resp.content_type, resp.headers.get("Content-Disposition"), raw
                    )
        except TimeoutError as err:
            raise _Transient(WeComConnectionError(f"WeCom {path}: no answer within the timeout")) from err
        except aiohttp.ClientError as err:
            msg = f"WeCom {path}: {type(err).__name__}: {redact(str(err))}"
            raise _Transient(WeComConnectionError(msg)) from err
        if answer.status >= 500 or answer.status == 429:
            raise _Transient(WeComConnectionError(f"WeCom {path}: HTTP {answer.status}"))
        if answer.status != 200:
            raise WeComConnectionError(f"WeCom {path}: HTTP {answer.status}")
        if expect_json:
            data = _decode(answer.body, path)
        else:
            data = _error_body(answer)
        if data is not None:
            self._check(data, path)
        return _Answer(answer.status, answer.content_type, answer.disposition, answer.body, data)

    def _check(self, data: dict[str, Any], path: str) -> None:
        errcode = int(data.get("errcode", 0) or 0)
        if errcode == 0:
            return
        errmsg = str(data.get("errmsg", ""))
        if errcode in TRANSIENT_ERRORS:
            raise _Transient(WeComAPIError(errcode, errmsg, path))
        if errcode in RATE_LIMIT_ERRORS:
            raise WeComRateLimited(errcode, errmsg, path, self._settings.rate_limit_wait_seconds)
        raise WeComAPIError(errcode, errmsg, path)


def _json_bytes(body: dict[str, Any]) -> bytes:
    # ensure_ascii=False: WeCom measures content in UTF-8 bytes, and \\uXXXX escapes would triple Chinese text
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _error_body(answer: _Answer) -> dict[str, Any] | None:
    """A download that is really WeCom's JSON error ({"errcode": 40007, ...}); None for content."""
    if answer.content_type not in ("application/json", "text/plain") and answer.body[:1] != b"{":
        return None
    try:
        data = json.loads(answer.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "errcode" in data else None


def _decode(raw: bytes, path: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _Transient(WeComConnectionError(f"WeCom {path}: answer is not JSON")) from err
    if not isinstance(data, dict):
        raise _Transient(WeComConnectionError(f"WeCom {path}: answer is not a JSON object"))
    return data
