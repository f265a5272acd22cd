"""The callback endpoint at wecom.callback_path: verify, decrypt, store in the inbox, answer 200."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import Counter
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import ConfigError, MalformedCallback, WeComCryptoError
from bot.keys import CALLBACK, CLOCK, ENGINE, INBOX, METRICS, SETTINGS, WRITE_LOCK
from bot.wecom.crypto import CallbackCrypto, check_timestamp, encrypted_field
from bot.wecom.parse import dedupe_key, event_name, message_dict, to_event
from bot.write_gate import WriteGate
from models.inbox import InboundEvent

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


MAX_DEPTH = 8  # WeCom nests four levels at most (SelectedItems/SelectedItem/OptionIds/OptionId)


def nesting_depth(value: Any) -> int:
    """How many levels of elements a parsed message holds (a flat message: 1); iterative, so any depth is safe."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth) for child in node)
        else:
            deepest = max(deepest, depth)
    return deepest


class CallbackEndpoint:
    """GET: URL verification. POST: a message, committed to the inbox before the empty 200."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        settings = app[SETTINGS]
        self.limit = settings.server.max_callback_body_bytes
        self.max_skew = settings.wecom.max_timestamp_skew_seconds
        key = settings.wecom.encoding_aes_key.get_secret_value()
        self.writer = GroupCommit(app, app.setdefault(WRITE_LOCK, WriteGate()))
        self._counters: dict[str, Counter] = {}  # outcome → its labelled counter, looked up once
        try:
            self.crypto = (
                CallbackCrypto(settings.wecom.token.get_secret_value(), key, settings.wecom.corp_id) if key else None
            )
        except WeComCryptoError as err:
            raise ConfigError("wecom.encoding_aes_key", str(err)) from err

    def _refuse(self, status: int, outcome: str, reason: str, started: float) -> web.Response:
        log.warning("callback refused (%s): %s", outcome, reason)
        self._count(outcome, started)
        return web.Response(status=status, text=f"{outcome}\n")

    def _count(self, outcome: str, started: float) -> None:
        metrics = self.app[METRICS]
        counter = self._counters.get(outcome)
        if counter is None:
            counter = self._counters[outcome] = metrics.callbacks.labels(outcome)
        counter.inc()
        metrics.callback_seconds.observe(time.perf_counter() - started)

    def _params(self, request: web.Request, *names: str) -> list[str] | None:
        values = [request.query.get(n, "") for n in names]
        return values if all(values) else None

    async def verify_url(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if self.crypto is None:
            return self._refuse(503, "not_configured", "wecom.encoding_aes_key is empty", started)
        params = self._params(request, "msg_signature", "timestamp", "nonce", "echostr")
        if params is None:
            return self._refuse(400, "bad_request", "missing msg_signature/timestamp/nonce/echostr", started)
        sig, ts, nonce, echostr = params
        try:
            plain = self.crypto.verify_url(sig, ts, nonce, echostr)
            check_timestamp(ts, self.app[CLOCK].now(), self.max_skew)
        except WeComCryptoError as err:
            return self._refuse(403, "bad_signature", str(err), started)
        self._count("verified", started)
        return web.Response(body=plain.encode("utf-8"), content_type="text/plain", charset="utf-8")

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.limit:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(self.limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
        return b"".join(chunks)

    async def receive(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if self.crypto is None:
            return self._refuse(503, "not_configured", "wecom.encoding_aes_key is empty", started)
        params = self._params(request, "msg_signature", "timestamp", "nonce")
        if params is None:
            return self._refuse(400, "bad_request", "missing msg_signature/timestamp/nonce", started)
        sig, ts, nonce = params
        try:
            body = await self._read(request)
        except _TooLarge:
            return self._refuse(413, "too_large", f"body over {self.limit} bytes", started)
        try:
            encrypt = encrypted_field(body)
            self.crypto.check_signature(sig, ts, nonce, encrypt)
        except MalformedCallback as err:
            return self._refuse(400, "bad_xml", str(err), started)
        except WeComCryptoError as err:
            return self._refuse(403, "bad_signature", str(err), started)
        try:
            check_timestamp(ts, self.app[CLOCK].now(), self.max_skew)
        except WeComCryptoError as err:
            return self._refuse(403, "stale", str(err), started)
        try:
            data = message_dict(self.crypto.decrypt_field(sig, ts, nonce, encrypt))
            if nesting_depth(data) > MAX_DEPTH:  # JSON encoders and decoders give up near 1,000 levels
                raise MalformedCallback(f"elements nested deeper than {MAX_DEPTH} levels")
            to_event(data)  # refuse here what the worker could never parse
        except MalformedCallback as err:
            return self._refuse(400, "bad_xml", str(err), started)
        except WeComCryptoError as err:
            return self._refuse(403, "bad_crypto", str(err), started)
        try:
            inserted = await self._store(data)
        except Exception as err:  # the database did not take it: no 200, so WeCom delivers it again
            log.exception("callback not stored")
            return self._refuse(503, "store_failed", f"inbox insert failed: {type(err).__name__}", started)
        self._count("accepted" if inserted else "duplicate", started)
        if inserted and INBOX in self.app:
            self.app[INBOX].wake()
        return web.Response(status=200)

    async def _store(self, data: dict[str, Any]) -> bool:
        """INSERT the event and COMMIT (shared with callbacks arriving at the same moment); True if it is new,
        False if a retried delivery hit the unique dedupe_key and changed nothing."""
        return await self.writer.store({
            "dedupe_key": dedupe_key(data),
            "from_user": data["FromUserName"],
            "msg_type": data["MsgType"][:32],
            "event": (event_name(data) or "")[:64] or None,
            "payload": data,
            "state": "pending",
            "attempts": 0,
            "received_at": self.app[CLOCK].now(),
        })


def _is_outage(err: Exception) -> bool:
    """The database or the connection failed (not one row): retrying rows one by one would only fail again."""
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(err, sa_exc.OperationalError | sa_exc.InterfaceError | OSError)


def _fail(batch: list[tuple[dict[str, Any], asyncio.Future[bool]]], err: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(err)


def _answer(batch: list[tuple[dict[str, Any], asyncio.Future[bool]]], inserted: set[str]) -> None:
    for values, future in batch:
        key = values["dedupe_key"]
        is_new = key in inserted
        inserted.discard(key)  # the same event twice in one batch: the second is the duplicate
        if not future.done():
            future.set_result(is_new)


_INSERT_COLUMNS = ("dedupe_key", "from_user", "msg_type", "event", "payload", "state", "attempts", "received_at")


class GroupCommit:
    """Callbacks that arrive within a few milliseconds of each other are written together: one INSERT and one
    COMMIT for the batch on a connection kept for the purpose, and each caller is answered only after the commit
    that holds its row. At load this turns a commit per callback into a commit per batch; idle, it costs the
    window (2 ms) per ack. One writer per process also keeps SQLite writers off its busy timeout."""

    MAX_BATCH = 500  # 8 columns each: well under SQLite's 32,766 bound variables
    WINDOW_SECONDS = 0.002  # how long the first callback of a batch waits for company (cf. PostgreSQL commit_delay)

    def __init__(self, app: web.Application, lock: WriteGate) -> None:
        self.app = app
        self.lock = lock
        self._pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None

    async def store(self, values: dict[str, Any]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((values, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="inbox-group-commit")
        return await future  # the commit runs in the flusher task: a caller hanging up cannot cancel it

    async def _flush(self) -> None:
        with self.lock.hold_urgent():  # from the window's start to the last commit, the inbox worker waits
            await asyncio.sleep(self.WINDOW_SECONDS)
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
            try:
                inserted = await self._insert([values for values, _ in batch])
            except Exception as err:
                await self._drop_connection()
                if len(batch) == 1 or _is_outage(err):  # the database is down: every caller answers 503
                    _fail(batch, err)
                else:  # maybe one row the database cannot take: each alone, so only that one fails
                    await self._one_by_one(batch)
                continue
            _answer(batch, inserted)

    async def _one_by_one(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        for i, (values, future) in enumerate(batch):
            try:
                inserted = await self._insert([values])
            except Exception as err:
                await self._drop_connection()
                log.warning("callback %s not stored: %s", values["dedupe_key"], type(err).__name__)
                if _is_outage(err):
                    _fail(batch[i:], err)
                    return
                _fail([(values, future)], err)
            else:
                _answer([(values, future)], inserted)

    async def _insert(self, rows: list[dict[str, Any]]) -> set[str]:
        """The dedupe keys that were new; the batch is committed when this returns."""
        engine = self.app[ENGINE]
        if engine.dialect.name == "sqlite":
            async with self.lock:
                return await self._insert_sqlite(rows)
        stmt = (
            postgresql.insert(InboundEvent)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(InboundEvent.dedupe_key)
        )
        async with engine.begin() as conn:
            result = await conn.execute(stmt, rows)
            return set(result.scalars())

    async def _insert_sqlite(self, rows: list[dict[str, Any]]) -> set[str]:
        """One multi-row INSERT in autocommit mode: atomic and committed in ONE trip to aiosqlite's thread, where
        SQLAlchemy's BEGIN / INSERT / fetch / COMMIT / reset take about ten, each a costly hand-over of the GIL
        (it halved the ack throughput). Values go through the columns' own bind processors (JSON, UTC datetime),
        so the rows read back exactly as ORM-written ones; a new NOT NULL column on the inbox must be added here."""
        if self._conn is None or self._conn.closed:
            self._conn = await self.app[ENGINE].connect()
        dialect = self._conn.dialect
        table = InboundEvent.__table__
        processors = [table.c[name].type.bind_processor(dialect) for name in _INSERT_COLUMNS]
        params: list[Any] = []
        for row in rows:
            for name, process in zip(_INSERT_COLUMNS, processors, strict=True):
                value = row[name]
                params.append(process(value) if process is not None and value is not None else value)
        placeholders = ", ".join(["(" + ", ".join("?" * len(_INSERT_COLUMNS)) + ")"] * len(rows))
        sql = (
            f"INSERT INTO {InboundEvent.__tablename__} ({', '.join(_INSERT_COLUMNS)}) VALUES {placeholders} "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key"
        )
        driver: Any = (await self._conn.get_raw_connection()).driver_connection  # the aiosqlite.Connection
        result = await driver.execute_fetchall(sql, params)
        return {str(r[0]) for r in result}

    async def close(self) -> None:
        """Let the batch in flight finish, then close the connection (at shutdown)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # closing a broken connection: nothing left to save
                log.warning("closing the callback writer's connection failed", exc_info=True)


def setup(app: web.Application) -> None:
    """Register GET and POST at wecom.callback_path (no bearer token: WeCom signs its requests)."""
    endpoint = app[CALLBACK] = CallbackEndpoint(app)
    path = app[SETTINGS].wecom.callback_path
    app.router.add_get(path, endpoint.verify_url, allow_head=False)
    app.router.add_post(path, endpoint.receive)


async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
    """Close the callback writer's connection at shutdown, before the engine is disposed (registered after it)."""
    yield
    await app[CALLBACK].writer.close()
