"""SQLAlchemy models and the domain rules that change them; importing this package registers every table."""

from models import (
    alert,
    campaign,
    campaign_alert,
    catalog,
    conversation,
    count,
    customer,
    inbox,
    org,
    outbox,
    points,
    retention,
    segment,
    stock,
    task,
    transfer,
)
from models.base import Base

__all__ = [
    "Base",
    "alert",
    "campaign",
    "campaign_alert",
    "catalog",
    "conversation",
    "count",
    "customer",
    "inbox",
    "org",
    "outbox",
    "points",
    "retention",
    "segment",
    "stock",
    "task",
    "transfer",
]
