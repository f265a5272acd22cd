"""A small Router: handlers register by event type, text command or card-button kind; first match wins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.events import CardClick, Event, TextMessage
from handlers.parse import words
from models.org import Staff
from models.outbox import send_card, send_markdown, send_text


class _Unhandled:
    def __repr__(self) -> str:
        return "UNHANDLED"


UNHANDLED: Final = _Unhandled()


@dataclass
class Context:
    """What a handler gets besides the event: dependencies, the open transaction, the sender and "now"."""

    deps: Deps
    session: AsyncSession
    user: Staff
    now: datetime
    event: Event

    async def reply(self, text: str, *, dedupe_key: str | None = None) -> None:
        await send_text(self.session, self.event.from_user, text, now=self.now, dedupe_key=dedupe_key)

    async def reply_markdown(self, text: str, *, dedupe_key: str | None = None) -> None:
        await send_markdown(self.session, self.event.from_user, text, now=self.now, dedupe_key=dedupe_key)

    async def reply_card(self, card: dict[str, Any], *, dedupe_key: str | None = None) -> None:
        await send_card(self.session, self.event.from_user, card, now=self.now, dedupe_key=dedupe_key)


def split_command(text: str, names: Sequence[str]) -> list[str] | None:
    """If text starts with one of the command names, the arguments after it; else None.

    "盘点 A001 7", "盘点A001 7", "盘点:A001 7", "盘点，A001，7" and "COUNT a001 7" all match; a Latin name must
    stand as a whole word.
    """
    parts = words(text)
    if not parts:
        return None
    head, rest = parts[0], parts[1:]
    for name in names:
        if head.lower() == name.lower():
            return rest
        if not name.isascii() and head.startswith(name) and len(head) > len(name):
            return [head[len(name) :], *rest]
    return None


Filter = Callable[[Any, Context], dict[str, Any] | None]
Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class _Route:
    event_type: type[Event]
    filter: Filter
    handler: Handler


def _always(_event: Any, _ctx: Context) -> dict[str, Any]:
    return {}


class Router:
    """Routes are tried in registration order, then included routers in inclusion order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: list[_Route] = []
        self._children: list[Router] = []

    def on(self, event_type: type[Event], filter: Filter | None = None) -> Callable[[H], H]:
        def register(handler: H) -> H:
            self._routes.append(_Route(event_type, filter or _always, handler))
            return handler

        return register

    def command(self, *names: str) -> Callable[[H], H]:
        """A text command; the handler is called as handler(event, ctx, args=[...])."""

        def match(event: TextMessage, _ctx: Context) -> dict[str, Any] | None:
            args = split_command(event.content, names)
            return None if args is None else {"args": args}

        return self.on(TextMessage, match)

    def button(self, kind: str) -> Callable[[H], H]:
        """A card button `<kind>:<action>:<id>`; the handler is called as handler(event, ctx, action=, ident=)."""

        def match(event: CardClick, _ctx: Context) -> dict[str, Any] | None:
            k, action, ident = event.parts
            return {"action": action, "ident": ident} if k == kind else None

        return self.on(CardClick, match)

    def include(self, router: Router) -> Router:
        self._children.append(router)
        return router

    async def dispatch(self, event: Event, ctx: Context) -> Any:
        for route in self._routes:
            if not isinstance(event, route.event_type):
                continue
            kwargs = route.filter(event, ctx)
            if kwargs is None:
                continue
            result = await route.handler(event, ctx, **kwargs)
            if result is not UNHANDLED:
                return result
        for child in self._children:
            result = await child.dispatch(event, ctx)
            if result is not UNHANDLED:
                return result
        return UNHANDLED
