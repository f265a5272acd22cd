"""The handlers skeleton: Router matching, dispatch (directory check, help fallback, DomainError rollback)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

import handlers
from bot.deps import Deps
from bot.errors import InvalidQuantity
from bot.events import CardClick, EnterAgent, Event, ImageMessage, TextMessage
from bot.messages import render
from handlers.router import UNHANDLED, Context, Router, split_command
from models.org import Region
from models.outbox import OutboundMessage
from tests.factories import Chain

WHEN = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def text(user: str, content: str) -> TextMessage:
    return TextMessage(from_user=user, create_time=WHEN, agent_id=1000002, content=content, msg_id="1")


def click(user: str, key: str) -> CardClick:
    return CardClick(from_user=user, create_time=WHEN, agent_id=1000002, key=key, task_id="t", card_type="x",
                     response_code="rc")


async def run(deps: Deps, event: Event) -> list[str]:
    """Dispatch in one transaction, as the inbox worker does; return the texts queued for the sender."""
    async with deps.sessions() as session, session.begin():
        await handlers.dispatch(event, deps, session)
    async with deps.sessions() as session:
        rows = (await session.execute(select(OutboundMessage).order_by(OutboundMessage.id))).scalars().all()
    assert all(r.recipient == event.from_user for r in rows)
    return [r.payload.get("content", "") for r in rows]


@pytest.mark.parametrize("content", ["帮助", "help", "HELP", "ｈｅｌｐ", " 帮助 ", "?", "菜单"])
async def test_help_in_any_form_gets_the_help_text(deps: Deps, chain: Chain, content: str) -> None:
    assert await run(deps, text("s1", content)) == [render("help", reason="")]


@pytest.mark.parametrize("content", ["今天天气不错", "asdfgh", "", "👍"])
async def test_anything_not_understood_gets_help_with_a_reason(deps: Deps, chain: Chain, content: str) -> None:
    assert await run(deps, text("m1", content)) == [render("help", reason="没看懂这条消息。", role="manager")]


async def test_unknown_user_is_told_so_and_nothing_else(deps: Deps, chain: Chain) -> None:
    assert await run(deps, text("nobody", "盘点 A001 7")) == [render("unknown_user", userid="nobody")]


async def test_unknown_user_background_event_gets_no_reply(deps: Deps, chain: Chain) -> None:
    assert await run(deps, EnterAgent(from_user="nobody", create_time=WHEN, agent_id=1000002)) == []


async def test_unknown_button_kind_is_answered_as_stale(deps: Deps, chain: Chain) -> None:
    [reply] = await run(deps, click("sup1", "nosuchkind:do:1"))
    assert "按钮已失效" in reply


async def test_domain_error_rolls_back_the_handlers_writes_and_tells_the_user(
    deps: Deps, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = Router("test")

    @router.command("坏")
    async def broken(event: TextMessage, ctx: Context, args: list[str]) -> None:
        ctx.session.add(Region(code="RX", name="不该留下"))
        await ctx.session.flush()
        raise InvalidQuantity("qty must be positive", "数量要大于 0，请重新输入，例如「盘点 A001 7」。")

    monkeypatch.setattr(handlers, "root_router", lambda: router)
    assert await run(deps, text("s1", "坏 1")) == ["数量要大于 0，请重新输入，例如「盘点 A001 7」。"]
    async with deps.sessions() as session:
        assert (await session.execute(select(Region).where(Region.code == "RX"))).first() is None


def _ctx() -> Any:
    return None  # the Router itself never looks at ctx


async def test_router_first_match_wins_and_unhandled_falls_through_to_children() -> None:
    calls: list[str] = []
    root, child = Router("root"), Router("child")

    @root.command("库存", "stock")
    async def declines(event: TextMessage, ctx: Context, args: list[str]) -> Any:
        calls.append(f"root:{args}")
        return UNHANDLED

    @child.command("stock")
    async def answers(event: TextMessage, ctx: Context, args: list[str]) -> str:
        calls.append(f"child:{args}")
        return "ok"

    @child.on(TextMessage)
    async def never(event: TextMessage, ctx: Context) -> str:
        calls.append("never")
        return "no"

    root.include(child)
    assert await root.dispatch(text("s1", "STOCK a001"), _ctx()) == "ok"
    assert calls == ["root:['a001']", "child:['a001']"]
    image = ImageMessage(from_user="s1", create_time=WHEN, agent_id=1, pic_url="", media_id="m", msg_id="2")
    assert await root.dispatch(image, _ctx()) is UNHANDLED


async def test_router_button_passes_action_and_ident() -> None:
    router = Router("transfer")
    seen: list[tuple[str, str]] = []

    @router.button("transfer")
    async def on_button(event: CardClick, ctx: Context, action: str, ident: str) -> None:
        seen.append((action, ident))

    await router.dispatch(click("sup1", "transfer:approve:17"), _ctx())
    assert await router.dispatch(click("sup1", "alert:ack:5"), _ctx()) is UNHANDLED
    assert seen == [("approve", "17")]


@pytest.mark.parametrize(
    ("content", "args"),
    [("盘点 A001 7", ["A001", "7"]), ("盘点A001 7", ["A001", "7"]), ("COUNT a001 7", ["a001", "7"]),
     ("盘点　Ａ００１　７", ["A001", "7"]), ("counting 7", None), ("盘点", [])],
)
def test_split_command_tolerates_case_full_width_and_a_missing_space(content: str, args: list[str] | None) -> None:
    assert split_command(content, ["盘点", "count"]) == args
