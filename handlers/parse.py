"""What people type, read plainly: NFKC words, quantities with units, and ids that can really be ids."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import InvalidInput, InvalidQuantity, UnknownEntity
from bot.messages import render
from models.catalog import Sku, match_skus

# Primary keys are PostgreSQL INTEGER (int4): a larger number is no id and must never reach a query.
DB_ID_MAX = 2**31 - 1
# Barcode lengths (EAN-8, UPC-A, EAN-13, GTIN-14): a number this long where an id belongs is a scanned product.
BARCODE_LENGTHS = frozenset({8, 12, 13, 14})
# Punctuation people put between words: "盘点:A005 47", "盘点，A005，47" (NFKC has made ，：； half-width).
_SEPARATORS = re.compile(r"[\s,;:、。]+")
# What may follow a count: "47个", "3盒", "5 件".
UNITS = (
    "个", "件", "盒", "箱", "瓶", "包", "袋", "支", "只", "条", "罐", "听", "桶", "本", "张", "块", "双", "套", "台",
    "份", "片", "粒", "把", "卷", "提", "板", "pcs", "pc",
)
_UNIT_SUFFIX = re.compile("(?:" + "|".join(map(re.escape, sorted(UNITS, key=len, reverse=True))) + ")$",
                          re.IGNORECASE)
_ASCII_INT = re.compile(r"[0-9]+", re.ASCII)
ECHO_CHARS = 20
SKU_CHOICES = 6  # several name matches: this many are listed to pick from


def nfkc(text: str) -> str:
    """NFKC (full-width digits, letters and punctuation to half-width), except numbers that are no digits
    (Unicode category No: ², ①, ½): NFKC would make them plain digits, and "签收 ²" must not sign transfer 2."""
    if text.isascii():
        return text
    out: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "No":
            out += [unicodedata.normalize("NFKC", text[start:i]), ch]
            start = i + 1
    out.append(unicodedata.normalize("NFKC", text[start:]))
    return "".join(out)


def normalize_text(text: str) -> str:
    """nfkc(), runs of white space to one space."""
    return re.sub(r"\s+", " ", nfkc(text)).strip()


def words(text: str) -> list[str]:
    """The words of a message: nfkc(), split on white space and the punctuation people put between words."""
    return [w for w in _SEPARATORS.split(nfkc(text)) if w]


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """An echo of what someone typed, short enough for any reply: "很长的输入…"."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def strip_unit(word: str) -> str:
    return _UNIT_SUFFIX.sub("", word) if len(word) > 1 else word


def is_unit(word: str) -> bool:
    return word.lower() in UNITS


def looks_like_qty(word: str) -> bool:
    """A word meant as a number, valid or not: "47", "47个", "-3", "4.5", "፩", "五", a 5,000-digit run."""
    core = strip_unit(word).lstrip("+-")
    return bool(core) and any(c.isnumeric() for c in core) and all(c.isnumeric() or c in ".," for c in core)


def parse_qty(word: str, limit: int) -> int:
    """A whole quantity 0..limit from "47" or "47个"; anything else gets a reply saying what to send."""
    core = strip_unit(word)
    if _ASCII_INT.fullmatch(core) and len(core) <= len(str(limit)) and int(core) <= limit:
        return int(core)
    whole = _ASCII_INT.fullmatch(core.removeprefix("-")) is not None
    raise InvalidQuantity(f"bad quantity {word[:40]!r}", render("stock_bad_qty", qty=clip(word), max=limit,
                                                                  whole=whole))


def ascii_id(text: str) -> int | None:
    """A database id from plain ASCII digits within int4, else None (no normalisation: for card keys and paths)."""
    if not _ASCII_INT.fullmatch(text) or len(text) > len(str(DB_ID_MAX)):
        return None
    value = int(text)
    return value if 1 <= value <= DB_ID_MAX else None


def parse_id(word: str, *, what: str, usage: str) -> int:
    """An id someone typed ("12", "#12", "12号", "１２"); a barcode, a huge or a non-number gets a plain reply."""
    core = normalize_text(word).lstrip("#").removesuffix("号").strip()
    value = ascii_id(core)
    if value is not None:
        return value
    if _ASCII_INT.fullmatch(core) and len(core) in BARCODE_LENGTHS:
        raise InvalidInput(f"{what}: barcode {core!r} where an id belongs",
                           render("bad_id", what=what, given=clip(core), barcode=True, usage=usage))
    raise InvalidInput(f"{what}: {word[:40]!r} is no id",
                       render("bad_id", what=what, given=clip(word), barcode=False, usage=usage))


def _part_of_name(args: Sequence[str], i: int) -> bool:
    """"3包" in "维达抽纸 3包 47" names the product: a number with a unit, then the item's own quantity.

    Not so in "A001 5个 6900000000028 3", where the number after it starts the next item (a barcode and its count).
    """
    word, rest = args[i], args[i + 1 :]
    return (strip_unit(word) != word and bool(rest) and looks_like_qty(rest[0])
            and (len(rest) == 1 or not looks_like_qty(rest[1])))


@dataclass(frozen=True)
class Item:
    """One "<SKU> <数量>" of a message; qty is the raw word (None when it is missing)."""

    sku: str
    qty: str | None


def items(args: Sequence[str]) -> list[Item]:
    """Pair words into items: a SKU (code, barcode or a name of one or more words) followed by its quantity.

    "A005 47 A006 21" → two items; "可口可乐 330ml 47个" and "维达抽纸 3包 47" → one; a unit standing alone
    after a quantity ("47 个") is dropped.
    """
    out: list[Item] = []
    name: list[str] = []
    for i, word in enumerate(args):
        if not name:
            if out and out[-1].qty is not None and is_unit(word):
                continue
            name.append(word)
        elif looks_like_qty(word) and not _part_of_name(args, i):
            out.append(Item(" ".join(name), word))
            name = []
        else:
            name.append(word)
    if name:
        out.append(Item(" ".join(name), None))
    return out


async def resolve_sku(session: AsyncSession, query: str) -> Sku:
    """The one SKU meant by a code, barcode, name or unique part of a name; none or several get a plain reply."""
    found = await match_skus(session, query, limit=SKU_CHOICES + 1)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownEntity("sku", query[:40], render("stock_unknown_sku", sku=clip(query)))
    raise SeveralSkus(query, found)


class SeveralSkus(InvalidInput):
    """A name part that fits several products: the reply lists them; 库存 offers them as buttons instead."""

    def __init__(self, query: str, found: list[Sku]) -> None:
        self.query = clip(query)
        self.skus = found[:SKU_CHOICES]
        self.more = len(found) > SKU_CHOICES
        super().__init__(f"sku {query[:40]!r} matches {len(found)} products",
                         render("sku_choices", query=self.query, skus=self.skus, more=self.more))
