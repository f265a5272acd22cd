"""Migration 0004_delivery: recent app messages get their content_hash, so the first identical reply after the
upgrade is not swallowed by a duplicate check that cannot see them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bot.config import DatabaseSettings
from bot.db import make_engine, upgrade
from models.outbox import content_hash
from tests.conftest import PG_URL, _create_pg_database, _drop_pg_database


async def test_upgrade_hashes_app_messages_sent_inside_the_longest_window(tmp_path: Any) -> None:
    name = ""
    if PG_URL:
        name = f"storebot_m_{uuid.uuid4().hex[:10]}"
        url = await _create_pg_database(PG_URL, name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(DatabaseSettings(url=url))
    try:
        await upgrade(engine, "0002_outbox_recipient_sent")
        now = datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC, as models.base.UTCDateTime does
        insert = text(
            "INSERT INTO outbox (id, channel, recipient, msgtype, payload, state, attempts, next_attempt_at, "
            "created_at, sent_at) VALUES (:id, :channel, 's1', 'text', :payload, :state, 1, :at, :at, :sent)"
        )
        payload = {"content": "帮助"}
        async with engine.begin() as conn:
            for row_id, channel, state, sent in (
                (1, "app", "sent", now - timedelta(minutes=5)),
                (2, "app", "sent", now - timedelta(hours=5)),
                (3, "app", "pending", None),
                (4, "appchat", "sent", now - timedelta(minutes=5)),
            ):
                await conn.execute(insert, {"id": row_id, "channel": channel, "payload": json.dumps(payload),
                                            "state": state, "at": now, "sent": sent})
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, content_hash FROM outbox ORDER BY id"))
            hashes = {int(r[0]): r[1] for r in rows}
        expected = content_hash("s1", "text", payload)
        assert hashes == {1: expected, 2: None, 3: expected, 4: None}
    finally:
        await engine.dispose()
        if name:
            await _drop_pg_database(PG_URL, name)
