"""The SKU catalogue: code, barcode, name, category, unit and price."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class Sku(Base):
    __tablename__ = "skus"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    barcode: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    category: Mapped[str | None] = mapped_column(String(128))
    unit: Mapped[str | None] = mapped_column(String(32))
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))


async def find_sku(session: AsyncSession, code_or_barcode: str) -> Sku | None:
    """A SKU by its code or its barcode, as staff type or scan it."""
    stmt = select(Sku).where(or_(Sku.code == code_or_barcode, Sku.barcode == code_or_barcode))
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()
