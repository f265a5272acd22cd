"""Typed inbound events: what the edge hands to handlers after verifying, decrypting and parsing a callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    from_user: str
    create_time: datetime
    agent_id: int | None


@dataclass(frozen=True)
class TextMessage(Event):
    content: str
    msg_id: str


@dataclass(frozen=True)
class ImageMessage(Event):
    pic_url: str
    media_id: str
    msg_id: str


@dataclass(frozen=True)
class LocationMessage(Event):
    """A location the user shared in the chat (MsgType location)."""

    latitude: float
    longitude: float
    scale: int
    label: str
    msg_id: str


@dataclass(frozen=True)
class LocationReport(Event):
    """The LOCATION event WeCom sends when the user enters the app with location reporting on."""

    latitude: float
    longitude: float
    precision: float


@dataclass(frozen=True)
class EnterAgent(Event):
    pass


@dataclass(frozen=True)
class MenuClick(Event):
    key: str


@dataclass(frozen=True)
class ScanCode(Event):
    """scancode_push / scancode_waitmsg: a menu button that scanned a barcode."""

    key: str
    scan_type: str
    scan_result: str
    wait_msg: bool


@dataclass(frozen=True)
class SelectedItem:
    question_key: str
    option_ids: tuple[str, ...]


@dataclass(frozen=True)
class CardClick(Event):
    """template_card_event: a button on one of our cards was tapped; key is `<kind>:<action>:<id>`."""

    key: str
    task_id: str
    card_type: str
    response_code: str
    selected: tuple[SelectedItem, ...] = ()

    @property
    def parts(self) -> tuple[str, str, str]:
        kind, _, rest = self.key.partition(":")
        action, _, ident = rest.partition(":")
        return kind, action, ident


@dataclass(frozen=True)
class ExternalContactChange(Event):
    """change_external_contact: a customer added or removed a member of staff (FromUserName is "sys")."""

    change_type: str
    user_id: str  # the member of staff
    external_userid: str
    state: str = ""
    welcome_code: str = ""


@dataclass(frozen=True)
class OtherEvent(Event):
    """Anything else (voice, video, subscribe, unknown events): kept so nothing is silently lost."""

    msg_type: str
    event: str | None
    raw: dict[str, Any] = field(default_factory=dict)


InboundEvent = (
    TextMessage | ImageMessage | LocationMessage | LocationReport | EnterAgent | MenuClick | ScanCode | CardClick
    | ExternalContactChange | OtherEvent
)
