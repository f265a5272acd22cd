"""`storebot serve` and `storebot db upgrade` as a user runs them: real processes, real ports, signals."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from tests.conftest import PG_URL, TEST_AES_KEY, TEST_CORP_ID, TEST_SECRET, TEST_TOKEN

# How long a `storebot` subprocess may take to start answering: seconds when idle, but imports and the schema
# check crawl on a 2-core machine that 6 other test runs share. A bound against hangs, not a performance goal.
STARTUP_SECONDS = 90
SUBPROCESS_TEST_TIMEOUT = pytest.mark.timeout(300)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port that is free now, for a subprocess to bind seconds later. Chosen outside the kernel's ephemeral
    range: a port from bind(0) is one that any outgoing connection on this shared machine (other test runs
    open thousands) may be given before the subprocess binds it, and then `serve` cannot start."""
    low, high = _ephemeral_range()
    span = (20000, low) if low - 20000 >= 1000 else (high + 1, 65536)
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.randrange(*span)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {span}")


def write_config(path: Path, db_url: str, *, port: int = 0, auto_migrate: bool = True) -> Path:
    path.write_text(
        f"""
[server]
port = {port}
admin_token = "serve-test-token"
data_dir = "{path.parent / 'data'}"
[database]
url = "{db_url}"
auto_migrate = {'true' if auto_migrate else 'false'}
[wecom]
corp_id = "{TEST_CORP_ID}"
secret = "{TEST_SECRET}"
token = "{TEST_TOKEN}"
encoding_aes_key = "{TEST_AES_KEY}"
api_base = "http://127.0.0.1:9"
[scheduler]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def test_outdated_schema_without_auto_migrate_says_to_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", auto_migrate=False)
    assert main(["serve", "--config", str(cfg)]) == 1
    assert "storebot db upgrade" in capsys.readouterr().err


@pytest.mark.skipif(bool(PG_URL), reason="the subprocess uses its own SQLite file; the in-process suite covers PG")
@SUBPROCESS_TEST_TIMEOUT
async def test_serve_answers_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    cfg = write_config(tmp_path / "c.toml", f"sqlite+aiosqlite:///{db}", port=free_port())
    upgrade = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "db", "upgrade", "--config", str(cfg))
    async with asyncio.timeout(STARTUP_SECONDS):
        assert await upgrade.wait() == 0
    port = int(cfg.read_text().split("port = ")[1].split()[0])
    env = {**os.environ, "STOREBOT_WECOM_SECRET": "env-secret-not-in-logs"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    try:
        async with asyncio.timeout(STARTUP_SECONDS), aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    assert proc.returncode is None, "storebot serve exited during start"
                    await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await proc.wait()
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stdout is not None
    output = (await proc.stdout.read()).decode()
    assert "env-secret-not-in-logs" not in output
    assert TEST_TOKEN not in output
