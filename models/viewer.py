"""Who is looking at the console: a person from the directory and the stores they may look into."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from models.org import staff_by_userid, stores_in_scope

ROLE_NAMES = {"staff": "店员", "manager": "店长", "supervisor": "督导", "admin": "总部"}


@dataclass(frozen=True)
class Viewer:
    staff_id: int
    userid: str
    name: str
    role: str
    store_ids: frozenset[int] | None  # None = every store (admin / head office)

    def sees(self, store_id: int) -> bool:
        return self.store_ids is None or store_id in self.store_ids

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def viewer_for(session: AsyncSession, userid: str) -> Viewer | None:
    """The viewer for an active person in the directory; None for anyone unknown or inactive."""
    if not userid or len(userid) > 64:
        return None
    staff = await staff_by_userid(session, userid)
    if staff is None:
        return None
    store_ids: frozenset[int] | None = None
    if staff.role != "admin":
        store_ids = frozenset(store.id for store in await stores_in_scope(session, staff))
    return Viewer(staff_id=staff.id, userid=staff.userid, name=staff.name, role=staff.role, store_ids=store_ids)
