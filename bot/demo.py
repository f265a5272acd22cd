"""`storebot demo`: bot + sandbox + a seeded sample chain on a temporary SQLite database."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import signal
import socket
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot import db
from bot.clock import SystemClock
from bot.config import Settings, load_settings
from bot.demo_data import STAFF, STORES, chat_id, demo_users, write_sample_chain
from bot.importer import import_files, prepare_schema
from bot.logs import configure_logging

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
ALNUM = string.ascii_letters + string.digits

TASKS_TOML = """
[[tasks]]
key = "morning_check"
title = "晨检"
schedule = "0 9 * * *"
assignee_role = "staff"
proof = "photo"
due_minutes = 60
points = 10
body = "检查门头、灯光、地面和收银台，拍一张店内全景发给我。"

[[tasks]]
key = "display_photo"
title = "陈列拍照"
schedule = "0 10 * * *"
assignee_role = "staff"
proof = "photo"
due_minutes = 90
points = 10
body = "按本周陈列要求整理主通道端架，拍照发给我。"

[[tasks]]
key = "closing_count"
title = "闭店盘点"
schedule = "30 21 * * *"
assignee_role = "staff"
proof = "count"
due_minutes = 60
points = 20
body = "逐一清点清单上的商品，回复「盘点 商品编码 数量」。"
"""


@dataclass(frozen=True)
class Credentials:
    """Random but valid WeCom app credentials, shared by the bot and its sandbox."""

    corp_id: str
    secret: str
    token: str
    encoding_aes_key: str
    admin_token: str
    pos_secret: str

    @classmethod
    def random(cls) -> Credentials:
        def pick(n: int) -> str:
            return "".join(secrets.choice(ALNUM) for _ in range(n))

        return cls(corp_id="ww" + secrets.token_hex(8), secret=pick(43), token=pick(24), encoding_aes_key=pick(43),
                   admin_token=pick(20), pos_secret=pick(32))


def write_config(folder: Path, creds: Credentials, bot_port: int, sandbox_url: str) -> Path:
    def q(value: object) -> str:  # a JSON string is a valid TOML basic string
        return json.dumps(str(value), ensure_ascii=False)

    text = f"""# written by `storebot demo`; removed with its folder
[server]
host = {q(HOST)}
port = {bot_port}
public_url = {q(f"http://{HOST}:{bot_port}")}
admin_token = {q(creds.admin_token)}
data_dir = {q(folder / "data")}

[database]
url = {q(f"sqlite+aiosqlite:///{folder / 'storebot.db'}")}
auto_migrate = true

[wecom]
corp_id = {q(creds.corp_id)}
agent_id = 1000002
secret = {q(creds.secret)}
token = {q(creds.token)}
encoding_aes_key = {q(creds.encoding_aes_key)}
api_base = {q(sandbox_url)}

[pos]
webhook_secret = {q(creds.pos_secret)}

[alerts]
quiet_hours = ""                        # the demo runs at any hour
{TASKS_TOML}"""
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _listen(port: int) -> socket.socket:
    """Bind now, so port 0 turns into a real port before the config that names it is written."""
    return socket.create_server((HOST, port))


def make_sandbox_app(settings: Settings, creds: Credentials, sandbox_url: str) -> web.Application:
    """The WeCom sandbox with the demo's people and store group chats, calling back into the bot."""
    from bot.sandbox import Sandbox, SandboxConfig, create_sandbox_app

    chats: dict[str, list[str]] = {chat_id(code): [] for code in STORES}
    for userid, (_, _, store, _) in STAFF.items():
        if store:
            chats[chat_id(store)].append(userid)
    config = SandboxConfig(
        corp_id=creds.corp_id, corp_secret=creds.secret, agent_id=settings.wecom.agent_id, token=creds.token,
        encoding_aes_key=creds.encoding_aes_key,
        callback_url=f"{settings.server.public_url}{settings.wecom.callback_path}",
        users=demo_users(), chats=chats, corp_name="样例连锁（演示）", public_url=sandbox_url,
    )
    return create_sandbox_app(Sandbox(config))


async def seed(settings: Settings, folder: Path) -> None:
    """Write the sample chain as CSVs and import them with the real importer."""
    engine = db.make_engine(settings.database)
    try:
        await prepare_schema(settings, engine)
        paths = await asyncio.to_thread(write_sample_chain, folder / "seed")
        await import_files(db.session_factory(engine), paths, clock=SystemClock())
    finally:
        await engine.dispose()


def banner(phone: str, bot_url: str, dashboard: str, creds: Credentials, folder: Path) -> str:
    store_of = {userid: STORES[store][0] for userid, (_, _, store, _) in STAFF.items() if store}
    return f"""
storebot 演示已启动 / demo is running
  手机页面 Phone:        {phone}
  看板 Dashboard:        {dashboard}
  机器人 Bot:            {bot_url}  (callback {bot_url}/wecom/callback)
  管理员口令 Admin token: {creds.admin_token}   (API: Authorization: Bearer <token>)
  临时目录 Temp folder:  {folder}

试试 / Try this:
  1. 打开手机页面，选一个用户 / open the phone page and pick a user:
     lina（李娜，{store_of["lina"]} 店员 staff）, zhangwei（张伟，{store_of["zhangwei"]} 店长 manager）,
     fengtao（冯涛，华东区督导 supervisor）, caoyang（曹阳，管理员 admin）
  2. 发送 / send:  帮助    库存 A001    盘点 A001 7    调拨 S002 A001 5
  3. 在看板上看库存和预警 / watch stock and alerts on the dashboard.
按 Ctrl-C 停止 / press Ctrl-C to stop.
"""


async def serve_demo(port: int, sandbox_port: int, keep: bool, stop: asyncio.Event | None = None) -> int:
    folder = Path(tempfile.mkdtemp(prefix="storebot-demo-"))
    runners: list[web.AppRunner] = []
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            bot_sock = _listen(port)
            try:
                sandbox_sock = _listen(sandbox_port)
            except OSError:
                bot_sock.close()
                raise
        except OSError as err:
            print(f"storebot demo: cannot listen on {HOST}: {err} — try --port 0 --sandbox-port 0")
            return 1
        bot_port, sandbox_port = bot_sock.getsockname()[1], sandbox_sock.getsockname()[1]
        sandbox_url = f"http://{HOST}:{sandbox_port}"
        creds = Credentials.random()
        settings = load_settings(write_config(folder, creds, bot_port, sandbox_url), env={})
        configure_logging(settings.secrets(), logging.WARNING)
        await seed(settings, folder)

        from bot.app import create_app

        runners.append(await _start(make_sandbox_app(settings, creds, sandbox_url), sandbox_sock))

        runners.append(await _start(create_app(settings), bot_sock))
        bot_url = settings.server.public_url
        dashboard = f"{bot_url}/dashboard?token={creds.admin_token}"
        print(banner(f"{sandbox_url}/", bot_url, dashboard, creds, folder), flush=True)
        await stop.wait()
        print("正在停止 / stopping…", flush=True)
        return 0
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if keep:
            print(f"保留临时目录 / kept: {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def _start(app: web.Application, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def run_demo(port: int = 8080, sandbox_port: int = 8090, keep: bool = False) -> int:
    return asyncio.run(serve_demo(port, sandbox_port, keep))
