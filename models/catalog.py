"""The SKU catalogue: code, barcode, name, category, unit and price."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String, func, or_, select
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


# A query longer than any code, barcode or name cannot match: answer "not found" without asking the database.
MAX_QUERY_CHARS = 64


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def match_skus(session: AsyncSession, query: str, *, limit: int = 7) -> list[Sku]:
    """SKUs for what someone typed: its code (any case) or barcode, else its full name, else names containing it.

    One exact hit wins; otherwise up to `limit` name matches, shortest name first (the likeliest meant).
    Code and barcode are looked up through their unique indexes; the name scan is one LIKE over the catalogue.
    """
    text = query.strip()
    if not text or len(text) > MAX_QUERY_CHARS:
        return []
    exact = select(Sku).where(or_(Sku.code.in_({text, text.upper()}), Sku.barcode == text, Sku.name == text))
    hits = list((await session.execute(exact.order_by(Sku.id).limit(limit))).scalars())
    by_code = [s for s in hits if s.code in (text, text.upper()) or s.barcode == text]
    if by_code:
        return by_code[:1]
    if hits:
        return hits
    pattern = "%" + "%".join(_like_escape(w) for w in text.split()) + "%"
    stmt = (
        select(Sku).where(or_(Sku.name.ilike(pattern, escape="\\"), Sku.code.ilike(pattern, escape="\\")))
        .order_by(func.length(Sku.name), Sku.code).limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
