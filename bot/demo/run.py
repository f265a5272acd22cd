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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot import db
from bot.app import create_app
from bot.clock import Clock, ShiftedClock, SystemClock
from bot.config import Settings, load_settings
from bot.demo.customers import demo_contacts, seed_customer_loop
from bot.demo.data import STAFF, STORES, chat_id, demo_users, sale_defaults, transfer_walkthrough, write_sample_chain
from bot.demo.panel import DemoPanel, install
from bot.importing.importer import import_files
from bot.logs import configure_logging
from bot.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from bot.sandbox.externalcontact import contacts_of

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
DIGEST_SECONDS = 20
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

    def secrets(self) -> list[str]:
        """What the log redaction filter hides."""
        return [self.secret, self.token, self.encoding_aes_key, self.admin_token, self.pos_secret]


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
dashboard_session_hours = 720                 # the demo clock can be moved forward by days: stay logged in

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
oauth_base = {q(sandbox_url)}                 # the console's login page: the sandbox lists every member to pick

[console]
session_hours = 720                     # the demo clock can be moved forward by days: stay logged in

[pos]
webhook_secret = {q(creds.pos_secret)}

[alerts]
digest_seconds = {DIGEST_SECONDS}                     # a short window, so the digest card shows within a minute
quiet_hours = ""                        # the demo runs at any hour

[task_rules]
push_jitter_seconds = 0                 # a pushed task card shows at once

[scheduler]
enabled = true                          # the digest flush and task chasing are scheduler jobs
{TASKS_TOML}"""
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _listen(port: int) -> socket.socket:
    """Bind now, so port 0 turns into a real port before the config that names it is written."""
    return socket.create_server((HOST, port))


def make_sandbox(settings: Settings, creds: Credentials, sandbox_url: str, clock: Clock | None = None) -> Sandbox:
    """The WeCom sandbox with the demo's people and store group chats, calling back into the bot."""
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
    sandbox = Sandbox(config, clock=clock)
    contacts_of(sandbox).contacts.update(demo_contacts())  # the clerks' WeCom customers (客户联系)
    return sandbox


async def seed(settings: Settings, folder: Path, clock: Clock | None = None) -> None:
    """Write the sample chain as CSVs and import them with the real importer."""
    engine = db.make_engine(settings.database)
    try:
        await db.prepare_schema(settings.database, engine)
        paths = await asyncio.to_thread(write_sample_chain, folder / "seed")
        await import_files(db.session_factory(engine), paths, clock=clock or SystemClock())
        await seed_customer_loop(settings, db.session_factory(engine), folder / "seed", clock or SystemClock())
    finally:
        await engine.dispose()


def banner(run: DemoRun) -> str:
    store_of = {userid: STORES[store][0] for userid, (_, _, store, _) in STAFF.items() if store}
    steps = "\n".join(f"     {n}. {step.who}: {step.zh}\n        {step.en}"
                      for n, step in enumerate(transfer_walkthrough(), 1))
    store, sku, qty = sale_defaults()
    return f"""
storebot 演示已启动 / demo is running
  手机页面 Phone:        {run.phone_url}
  看板 Dashboard:        {run.dashboard_url}
  控制台 Console:        {run.console_url}  (点「用企业微信登录」，在沙盒页面点任何一个人 / log in as anyone, one click)
  机器人 Bot:            {run.bot_url}  (callback {run.bot_url}{run.settings.wecom.callback_path})
  管理员口令 Admin token: {run.creds.admin_token}   (API: Authorization: Bearer <token>)
  临时目录 Temp folder:  {run.folder}

试试 / Try this:
  1. 打开手机页面，选一个用户 / open the phone page and pick a user:
     lina（李娜，{store_of["lina"]} 店员 staff）, zhangwei（张伟，{store_of["zhangwei"]} 店长 manager）,
     fengtao（冯涛，华东区督导 supervisor）, caoyang（曹阳，管理员 admin）
  2. 发送 / send:  帮助    库存 A001    盘点 A001 7
  3. 库存预警 / stock alert: 看板「演示操作」里点「模拟收银」({store} {sku} × {qty})，
     约 {DIGEST_SECONDS}–{DIGEST_SECONDS + DIGEST_SECONDS // 2} 秒后 zhangwei 的手机收到「库存提醒汇总」卡片
     / press "模拟收银" on the dashboard; zhangwei's phone shows the digest card.
  4. 任务 / tasks: 看板里点「立即推送」，或在另一个终端运行 / press "立即推送" on the dashboard, or run:
       storebot task run display_photo --stores S001 --config {run.folder / 'config.toml'}
     店员收到任务卡片，在手机页面点「拍照」完成 / the staff member gets the card; tap "拍照" on the phone page.
  5. 调拨 / transfer:
{steps}
按 Ctrl-C 停止 / press Ctrl-C to stop.
"""


@dataclass
class DemoRun:
    """A running demo: its settings, credentials, sandbox and the bot app, and where each answers."""

    folder: Path
    settings: Settings
    creds: Credentials
    sandbox: Sandbox
    bot_app: web.Application
    phone_url: str
    bot_url: str
    dashboard_url: str
    clock: ShiftedClock  # the demo's time: the panel moves it ahead
    console_url: str = ""  # the console: WeCom web login played by the sandbox


def bind(port: int, sandbox_port: int) -> tuple[socket.socket, socket.socket]:
    """Bind both ports now, so port 0 turns into a real port before the config that names it is written."""
    bot_sock = _listen(port)
    try:
        return bot_sock, _listen(sandbox_port)
    except OSError:
        bot_sock.close()
        raise


@asynccontextmanager
async def running_demo(folder: Path, bot_sock: socket.socket, sandbox_sock: socket.socket,
                       creds: Credentials | None = None, clock: Clock | None = None) -> AsyncIterator[DemoRun]:
    """Seed the chain into `folder`, serve the sandbox and the bot (with the demo panel) on the bound sockets."""
    bot_port, sandbox_port = bot_sock.getsockname()[1], sandbox_sock.getsockname()[1]
    sandbox_url = f"http://{HOST}:{sandbox_port}"
    creds = creds or Credentials.random()
    settings = load_settings(write_config(folder, creds, bot_port, sandbox_url), env={})
    await seed(settings, folder, clock)
    shifted = ShiftedClock(clock or SystemClock())  # the bot and the sandbox share the demo's movable time
    sandbox = make_sandbox(settings, creds, sandbox_url, shifted)
    bot_app = create_app(settings, clock=shifted)
    bot_url = settings.server.public_url
    install(bot_app, DemoPanel(self_url=bot_url, phone_url=f"{sandbox_url}/", clock=shifted))
    runners: list[web.AppRunner] = []
    try:
        runners.append(await _start(create_sandbox_app(sandbox), sandbox_sock))
        runners.append(await _start(bot_app, bot_sock))
        yield DemoRun(folder, settings, creds, sandbox, bot_app, f"{sandbox_url}/", bot_url,
                      f"{bot_url}/dashboard?token={creds.admin_token}", shifted, f"{bot_url}/console")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def serve_demo(port: int, sandbox_port: int, keep: bool, stop: asyncio.Event | None = None) -> int:
    folder = Path(tempfile.mkdtemp(prefix="storebot-demo-"))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            bot_sock, sandbox_sock = bind(port, sandbox_port)
        except OSError as err:
            print(f"storebot demo: cannot listen on {HOST}: {err} — try --port 0 --sandbox-port 0")
            return 1
        creds = Credentials.random()
        configure_logging(creds.secrets(), logging.WARNING)
        async with running_demo(folder, bot_sock, sandbox_sock, creds) as run:
            print(banner(run), flush=True)
            await stop.wait()
            print("正在停止 / stopping…", flush=True)
        return 0
    finally:
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
