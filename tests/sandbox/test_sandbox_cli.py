"""`storebot sandbox` as a real process: prints its URL, answers the WeCom API, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import aiohttp

from tests.edge.test_serve import STARTUP_SECONDS, SUBPROCESS_TEST_TIMEOUT


@SUBPROCESS_TEST_TIMEOUT
async def test_storebot_sandbox_runs_alone_and_stops_on_sigterm() -> None:
    env = {**os.environ, "STOREBOT_SANDBOX_CORP_ID": "wwcli", "STOREBOT_SANDBOX_CORP_SECRET": "cli-secret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--port", "0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            first = (await proc.stdout.readline()).decode()
            match = re.search(r"phone page at (http://127\.0\.0\.1:\d+)/", first)
            assert match, first
            async with aiohttp.ClientSession() as http, http.get(
                f"{match.group(1)}/cgi-bin/gettoken", params={"corpid": "wwcli", "corpsecret": "cli-secret"}
            ) as resp:
                assert (await resp.json())["errcode"] == 0
            proc.terminate()
            assert await proc.wait() == 0
            assert b"stopped" in await proc.stdout.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
