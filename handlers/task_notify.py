"""Who is told about a task's progress, in which words: a count task ticked by a 盘点, a task completed and
its cards settled."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import render
from models.org import Staff
from models.outbox import OutboundMessage, send_text, update_card, update_card_button
from models.task import Completion, CountProgress, TaskInstance, card_filter, on_completed, record_task_count

PROGRESS_ROW = "进度"  # the count card's row that handlers/task_gen.py:task_card fills with "还差 N 个"


def done_text(done: Completion) -> str:
    """What the person who completed a task reads, e.g. after the last 盘点 of a count task."""
    return render("task_done", title=done.task.title, state=done.state, points=done.points)


def done_label(task: TaskInstance, by: Staff, recipient: str) -> str:
    """What a settled card's button says: the completer's own outcome, or who did it for the others."""
    mine = by.userid == recipient
    if task.state == "late_done":
        return "已补交" if mine else f"{by.name}已补交"
    return "已完成" if mine else f"{by.name}已完成"


async def tick_count_tasks(session: AsyncSession, user: Staff, store_id: int, sku_id: int, now: datetime) -> list[str]:
    """A 盘点 of (store, SKU) ticks the count tasks listing it: the counter hears how many SKUs are left on each
    of their tasks that moved on (a completed task's cards are settled by settle_cards); returns the texts to answer for
    the tasks it completed."""
    progress: list[CountProgress] = []
    done = await record_task_count(session, user, store_id, sku_id, now, progress=progress)
    for step in progress:
        await send_text(session, user.userid, render("task_count_progress", title=step.task.title, left=step.left),
                        now=now, dedupe_key=f"task-count-progress:{step.task.id}:{step.line_id}")
    return [done_text(c) for c in done]


def finished_card(card: dict[str, Any], task: TaskInstance, label: str) -> dict[str, Any]:
    """A sent task card as it reads once the task is finished: the same card (task_id, title, rows), its
    progress row saying the count is done and its buttons greyed with `label`."""
    out = copy.deepcopy(card)
    if task.proof == "count":
        rows = out.get("horizontal_content_list") or []
        for row in rows:
            if isinstance(row, dict) and row.get("keyname") == PROGRESS_ROW:
                row["value"] = render("task_card_progress_done")
        if "sub_title_text" in out:
            out["sub_title_text"] = render("task_card_done_guide", title=task.title, label=label)
    for button in out.get("button_list") or []:  # should replace_text be ignored, the live button still says it
        if isinstance(button, dict):
            button["text"] = label
    out["replace_text"] = label
    return out


@on_completed
async def settle_cards(session: AsyncSession, done: Completion, now: datetime, skip: str | None = None) -> int:
    """A task was completed: its cards not sent yet are dropped, and every sent copy is updated with the
    response_code WeCom returned when that copy was sent (one use each, hence one update per card): a count
    card as a whole (its progress row would still say "还差 N 个"), any other card's button with who did it.
    `skip`: the completer tapped their own card, which the click's handler updates with the click's code."""
    task, by = done.task, done.by
    await session.execute(
        update(OutboundMessage).where(card_filter(task.id), OutboundMessage.state == "pending",
                                      OutboundMessage.channel == "app")
        .values(state="cancelled", last_error="task completed before the card went out")
        .execution_options(synchronize_session=False)
    )
    sent = (await session.execute(
        select(OutboundMessage.recipient, OutboundMessage.response_code, OutboundMessage.payload)
        .where(card_filter(task.id), OutboundMessage.state == "sent",
               OutboundMessage.channel == "app", OutboundMessage.response_code.is_not(None))
        .order_by(OutboundMessage.id)
    )).all()
    updated = 0
    for recipient, code, card in sent:
        if recipient == skip or not code:
            continue
        label = done_label(task, by, recipient)
        if task.proof == "count" and card:
            queued = await update_card(session, recipient, code, finished_card(card, task, label), now=now)
        else:
            queued = await update_card_button(session, recipient, code, label, now=now)
        updated += queued is not None
    return updated
