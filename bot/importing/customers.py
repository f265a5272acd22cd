"""The `customers` master-data kind: validate every row, then upsert members by customer_id with their tags."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.importing.rows import ImportJob, ImportReport, Row
from models.customer import Customer, CustomerTag
from models.org import Staff, Store

CHUNK = 5000
DEFAULT_TZ = "Asia/Shanghai"


def _joined_at(job: ImportJob, row: Row, tz: str) -> datetime | None:
    raw = job.text(row, "joined_at", max_len=32)
    if not raw:
        return None
    try:
        if len(raw) <= 10:
            return datetime.combine(date.fromisoformat(raw), time(0), ZoneInfo(tz))
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise job.bad(row, f"joined_at must be an ISO date like 2026-11-24, got {raw!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(tz))


def _phone(job: ImportJob, row: Row) -> str:
    raw = job.text(row, "phone", max_len=32)
    digits = re.sub(r"[\s\-+()]", "", raw)
    if digits and not digits.isdigit():
        raise job.bad(row, f"phone must be digits, got {raw!r}")
    return digits


async def import_customers(session: AsyncSession, job: ImportJob, report: ImportReport) -> None:
    stores = {s.code: (s.id, s.timezone) for s in (await session.scalars(select(Store))).all()}
    staff = set((await session.scalars(select(Staff.userid))).all())
    seen: dict[str, int] = {}
    parsed: list[tuple[str, dict[str, Any], list[str]]] = []
    for row in job.bar(job.rows, "check"):
        customer_id = job.text(row, "customer_id", required=True, max_len=128)
        if customer_id in seen:
            raise job.bad(row, f"duplicate customer_id {customer_id!r} (first on line {seen[customer_id]})")
        seen[customer_id] = row.line
        store_code = job.text(row, "home_store", max_len=64)
        if store_code and store_code not in stores:
            raise job.bad(row, f"unknown store {store_code!r} (import it in stores first)")
        follow = job.text(row, "follow_userid", max_len=64)
        if follow and follow not in staff:
            raise job.bad(row, f"unknown follow_userid {follow!r} (import it in staff first)")
        store_id, tz = stores[store_code] if store_code else (None, DEFAULT_TZ)
        phone = _phone(job, row)
        tags = sorted({t.strip() for t in job.text(row, "tags", max_len=1024).split(";") if t.strip()})
        if any(len(t) > 64 for t in tags):
            raise job.bad(row, "a tag is longer than 64 characters")
        values = {
            "name": job.text(row, "name", max_len=128), "phone": phone, "phone_tail": phone[-4:],
            "home_store_id": store_id, "external_userid": job.text(row, "external_userid", max_len=128) or None,
            "follow_userid": follow or None, "joined_at": _joined_at(job, row, tz),
        }
        parsed.append((customer_id, values, tags))
    existing = {c.customer_id: c for c in (await session.scalars(select(Customer))).all()}
    old_tags: dict[int, list[str]] = {}
    for pk, tag in await session.execute(select(CustomerTag.customer_pk, CustomerTag.tag)):
        old_tags.setdefault(pk, []).append(tag)
    members: list[tuple[Customer, list[str]]] = []
    for customer_id, values, tags in parsed:
        member = existing.get(customer_id)
        if member is None:
            member = Customer(customer_id=customer_id, created_at=job.at, updated_at=job.at, **values)
            session.add(member)
            report.created += 1
        else:
            changed = {k: v for k, v in values.items() if getattr(member, k) != v}
            changed_tags = sorted(old_tags.get(member.id, [])) != tags
            for key, value in changed.items():
                setattr(member, key, value)
            if changed or changed_tags:
                member.updated_at = job.at
                report.updated += 1
            else:
                report.unchanged += 1
        members.append((member, tags))
    await session.flush()
    retag = [(m.id, tags) for m, tags in members if sorted(old_tags.get(m.id, [])) != tags]
    ids = [pk for pk, _ in retag]
    for start in range(0, len(ids), CHUNK):
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_pk.in_(ids[start : start + CHUNK])))
    rows = [{"customer_pk": pk, "tag": tag} for pk, tags in retag for tag in tags]
    for start in range(0, len(rows), CHUNK):
        await session.execute(insert(CustomerTag), rows[start : start + CHUNK])
