"""人员 board: points per person for a month and each region's leaderboard (the seed's 区域排名每月公示)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.boards.filters import Selection
from models.org import Region, Staff, Store
from models.points import PointsEntry


@dataclass(frozen=True)
class PersonLine:
    region_name: str
    rank: int  # in the region, over everyone there (ties share a rank)
    ranked: int  # people with points in the region this month
    name: str
    userid: str
    store_id: int
    store_name: str
    points: int
    done: int
    late: int
    missed: int


async def leaderboard_lines(session: AsyncSession, sel: Selection, month: str) -> list[PersonLine]:
    """Every person with points in the month whose points were earned at a selected store, ranked within their
    region against the whole region (one grouped query; ranks in Python)."""
    regions = sorted({s.region_code for s in sel.stores})
    e = PointsEntry
    stmt = (
        select(e.region_id, e.staff_id, func.max(e.store_id), func.sum(e.points),
               func.count().filter(e.reason == "done"), func.count().filter(e.reason == "late_done"),
               func.count().filter(e.reason == "missed"))
        .join(Region, Region.id == e.region_id)
        .where(e.month == month, Region.code.in_(regions))
        .group_by(e.region_id, e.staff_id)
    )
    rows = (await session.execute(stmt)).all()
    visible = [r for r in rows if sel.ids is None or r[2] in sel.ids]
    if not visible:
        return []
    by_region: dict[int, list[int]] = {}
    for r in rows:
        by_region.setdefault(r[0], []).append(int(r[3] or 0))
    ids = sorted({r[1] for r in visible})
    names = {sid: (name, userid) for sid, name, userid in await session.execute(
        select(Staff.id, Staff.name, Staff.userid).where(Staff.id.in_(ids)))}
    stores = {s.id: s for s in sel.stores}
    region_names = dict((await session.execute(select(Region.id, Region.name))).all())
    store_names = dict((await session.execute(select(Store.id, Store.name))).all())
    lines = []
    for region_id, staff_id, store_id, pts, done, late, missed in visible:
        points = int(pts or 0)
        rank = 1 + sum(1 for p in by_region[region_id] if p > points)
        name, userid = names.get(staff_id, ("?", ""))
        store_name = stores[store_id].name if store_id in stores else store_names.get(store_id, "")
        lines.append(PersonLine(region_names.get(region_id, ""), rank, len(by_region[region_id]), name, userid,
                                store_id, store_name, points, int(done), int(late), int(missed)))
    lines.sort(key=lambda line: (line.region_name, line.rank, line.name))
    return lines
