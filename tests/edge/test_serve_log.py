"""serve.log says what happened: no APScheduler "Running job" / "executed successfully" lines for every tick
(issue 10: two INFO lines a second made the log unreadable), while our own jobs still say what they did."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.edge.test_serve import STARTUP_SECONDS, SUBPROCESS_TEST_TIMEOUT, free_port, write_config
from tests.queues.test_inbox_crash import prepare

HOURLY = """
[[tasks]]
key = "hourly_check"
title = "巡店"
schedule = "0 * * * *"
due_minutes = 60
proof = "confirm"
"""


@pytest.mark.skipif(bool(PG_URL), reason="the subprocess uses its own SQLite file; the in-process suite covers PG")
@SUBPROCESS_TEST_TIMEOUT
async def test_serve_log_was_flooded_by_apscheduler_job_runs(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
    await prepare(url)
    port = free_port()
    cfg = write_config(tmp_path / "c.toml", url, port=port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + HOURLY, encoding="utf-8")
    env = {**os.environ, "STOREBOT_SCHEDULER_ENABLED": "true", "STOREBOT_OUTBOX_BACKGROUND": "false"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(STARTUP_SECONDS):
            # the catch-up job runs as the scheduler starts and creates this hour's instance per store
            while not any("generated" in line and "task instances" in line for line in lines):
                raw = await proc.stdout.readline()
                assert raw, f"storebot serve exited early: {lines}"
                lines.append(raw.decode())
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rest, _ = await proc.communicate()
        lines += rest.decode().splitlines()
        assert proc.returncode == 0, lines
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = "\n".join(lines)
    assert "Running job" not in log and "executed successfully" not in log, log
    assert "INFO apscheduler" not in log, log
    assert "scheduler started with" in log  # our own lines are still there
