"""A faithful WeCom simulator: API side (tokens, errcodes, limits, media, cards) and user side (callbacks)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping

from aiohttp import web

from bot.sandbox.api import SANDBOX, faults
from bot.sandbox.api import routes as api_routes
from bot.sandbox.externalcontact import routes as externalcontact_routes
from bot.sandbox.oauth import routes as oauth_routes
from bot.sandbox.phone import STATIC
from bot.sandbox.phone import routes as phone_routes
from bot.sandbox.records import CallbackOutcome, Delivered, SandboxConfig, SandboxError
from bot.sandbox.user import Sandbox

__all__ = [
    "SANDBOX", "CallbackOutcome", "Delivered", "Sandbox", "SandboxConfig", "SandboxError", "config_from_env",
    "create_sandbox_app", "run_sandbox",
]
DEMO_USERS = {"m1": "王店长", "s1": "李小妹", "sup1": "郑督导", "admin": "陈总"}


def create_sandbox_app(sandbox: Sandbox) -> web.Application:
    """The sandbox as an aiohttp app: WeCom's API under /cgi-bin, the phone page at /."""
    app = web.Application(middlewares=[faults], client_max_size=25 * 1024 * 1024)
    app[SANDBOX] = sandbox
    app.add_routes(api_routes)
    app.add_routes(externalcontact_routes)
    app.add_routes(oauth_routes)  # WeCom's web login (the console)
    app.add_routes(phone_routes)
    app.router.add_static("/static/", STATIC)
    return app


def config_from_env(env: Mapping[str, str]) -> SandboxConfig:
    """Defaults overridden by STOREBOT_SANDBOX_* (CORP_ID, CORP_SECRET, AGENT_ID, TOKEN, ENCODING_AES_KEY,
    CALLBACK_URL, USERS as "id:名字,id:名字", FAULT_RATE, HTTP_502_RATE, SLOW_RATE, TOKEN_TTL_SECONDS, SEED)."""
    cfg = SandboxConfig(users=dict(DEMO_USERS))

    def get(name: str) -> str | None:
        return env.get(f"STOREBOT_SANDBOX_{name}") or None

    cfg.corp_id = get("CORP_ID") or cfg.corp_id
    cfg.corp_secret = get("CORP_SECRET") or cfg.corp_secret
    cfg.token = get("TOKEN") or cfg.token
    cfg.encoding_aes_key = get("ENCODING_AES_KEY") or cfg.encoding_aes_key
    cfg.callback_url = get("CALLBACK_URL")
    if users := get("USERS"):
        cfg.users = dict(pair.split(":", 1) for pair in users.split(",") if ":" in pair)
    cfg.agent_id = int(get("AGENT_ID") or cfg.agent_id)
    cfg.fault_rate = float(get("FAULT_RATE") or 0)
    cfg.http_502_rate = float(get("HTTP_502_RATE") or 0)
    cfg.slow_rate = float(get("SLOW_RATE") or 0)
    cfg.token_ttl_seconds = int(get("TOKEN_TTL_SECONDS") or cfg.token_ttl_seconds)
    seed = get("SEED")
    cfg.seed = int(seed) if seed else None
    return cfg


async def _serve(host: str, port: int, config: SandboxConfig) -> None:
    runner = web.AppRunner(create_sandbox_app(Sandbox(config)))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port  # the real port when 0 was asked for
    config.public_url = f"http://{host}:{bound}"
    print(f"storebot sandbox: WeCom API at {config.public_url}/cgi-bin/, phone page at {config.public_url}/")
    callback = config.callback_url or "(none)"
    print(f"  corp_id={config.corp_id} agent_id={config.agent_id} callback_url={callback}")
    print("  press Ctrl-C to stop", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    print("storebot sandbox: stopped")


def run_sandbox(host: str = "127.0.0.1", port: int = 8090) -> int:
    """`storebot sandbox`: run the simulator alone until interrupted."""
    try:
        asyncio.run(_serve(host, port, config_from_env(os.environ)))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as err:
        print(f"storebot sandbox: {err}")
        return 2
    return 0
