"""The chain's directory: regions, stores and staff, with who manages and supervises whom."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

ROLES = ("staff", "manager", "supervisor", "admin")


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    chat_id: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)


async def staff_by_userid(session: AsyncSession, userid: str) -> Staff | None:
    return (await session.execute(select(Staff).where(Staff.userid == userid, Staff.active))).scalar_one_or_none()


async def store_by_code(session: AsyncSession, code: str) -> Store | None:
    return (await session.execute(select(Store).where(Store.code == code))).scalar_one_or_none()


async def store_manager(session: AsyncSession, store_id: int) -> Staff | None:
    stmt = select(Staff).where(Staff.store_id == store_id, Staff.role == "manager", Staff.active).order_by(Staff.id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def region_supervisor(session: AsyncSession, region_id: int) -> Staff | None:
    stmt = select(Staff).where(Staff.region_id == region_id, Staff.role == "supervisor", Staff.active)
    return (await session.execute(stmt.order_by(Staff.id).limit(1))).scalar_one_or_none()


async def admins(session: AsyncSession) -> list[Staff]:
    stmt = select(Staff).where(Staff.role == "admin", Staff.active).order_by(Staff.id)
    return list((await session.execute(stmt)).scalars())


async def responsible(session: AsyncSession, store: Store, to: str) -> list[Staff]:
    """Who answers for a store: "manager" (its active manager), "supervisor" (its region's), "approver" (the
    manager, else the supervisor), anything else every admin. Empty when nobody holds the role."""
    if to in ("manager", "approver"):
        manager = await store_manager(session, store.id)
        if manager is not None or to == "manager":
            return [manager] if manager else []
    if to in ("supervisor", "approver"):
        supervisor = await region_supervisor(session, store.region_id)
        return [supervisor] if supervisor else []
    return await admins(session)


async def store_staff(session: AsyncSession, store_id: int, role: str | None = None) -> list[Staff]:
    stmt = select(Staff).where(Staff.store_id == store_id, Staff.active)
    if role is not None:
        stmt = stmt.where(Staff.role == role)
    return list((await session.execute(stmt.order_by(Staff.id))).scalars())


async def find_store(session: AsyncSession, text: str) -> Store | None:
    """A store by its code (any case) or its exact name, as people type it in chat."""
    if not text or len(text) > 128:
        return None
    stmt = select(Store).where(or_(Store.code.in_({text, text.upper()}), Store.name == text)).order_by(Store.id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def stores_in_scope(session: AsyncSession, user: Staff) -> list[Store]:
    """The stores a person may look into: an admin all, a supervisor their region's, anyone else their own."""
    stmt = select(Store).order_by(Store.code)
    if user.role == "supervisor":
        stmt = stmt.where(Store.region_id == user.region_id)
    elif user.role != "admin":
        stmt = stmt.where(Store.id == user.store_id)
    return list((await session.execute(stmt)).scalars())
