"""/api/tasks: list, run and broadcast tasks; answers to broadcasts.

A scheduled template has one instance per store and period, assigned to one person of its role (rotating by
day; anyone of the store may complete it); a broadcast has one instance per person.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from bot.api import DATE_MIN, ApiError, date_param, path_id, query_param, read_body
from bot.errors import UnknownEntity
from bot.keys import DEPS
from handlers.task_gen import NewTask, closes_at, create_tasks, run_now, staff_by_store
from models.org import Staff, Store
from models.task import TaskInstance, local, period_key
from models.task_proof import TaskBroadcast, broadcast_key

routes = web.RouteTableDef()


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str = Field(min_length=1)
    stores: list[str] = []


class BroadcastBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=64)
    body: str = Field("", max_length=2000)
    stores: list[str] = Field(min_length=1)
    role: Literal["staff", "manager"] = "staff"
    proof: Literal["photo", "confirm", "text"] = "text"
    due_minutes: int = Field(1440, ge=1, le=60 * 24 * 30)
    points: int = Field(0, ge=0, le=1000)


def _row(task: TaskInstance, store: Store, assignee: Staff) -> dict[str, Any]:
    return {
        "id": task.id, "title": task.title, "store": store.code, "assignee": assignee.userid,
        "assignee_name": assignee.name, "due_at": task.due_at.isoformat(), "state": task.state,
        "template": task.template_key, "period": task.period_key, "proof": task.proof, "flagged": task.flagged,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
    }


@routes.get("/api/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """?store=S001&date=2026-11-24 (the store-local date of the period); both optional."""
    deps = request.app[DEPS]
    store_code, day = query_param(request, "store"), query_param(request, "date")
    stmt = (
        select(TaskInstance, Store, Staff)
        .join(Store, Store.id == TaskInstance.store_id)
        .join(Staff, Staff.id == TaskInstance.assignee_id)
    )
    if store_code:
        stmt = stmt.where(Store.code == store_code)
    if day:  # the store-local date is the period key's prefix
        stmt = stmt.where(TaskInstance.period_key.startswith(date_param(request, "date", DATE_MIN).isoformat()))
    async with deps.sessions() as session:
        rows = (await session.execute(stmt.order_by(TaskInstance.fire_at, TaskInstance.id).limit(5000))).all()
    return web.json_response([_row(t, s, a) for t, s, a in rows])


@routes.post("/api/tasks/run")
async def run(request: web.Request) -> web.Response:
    """Create the template's current period now, through the scheduler's own path; a repeat creates nothing."""
    deps = request.app[DEPS]
    body = await read_body(request, RunBody)
    template = deps.config.template(body.template)
    if template is None:
        raise ApiError(422, f"template: no task template by the key {body.template!r}")
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        known = set((await session.execute(select(Store.code).where(Store.code.in_(body.stores)))).scalars())
        missing = [c for c in body.stores if c not in known]
        if missing:
            raise ApiError(422, f"stores: unknown store {missing[0]!r}")
        created = await run_now(session, deps.config, template, body.stores, now)
    return web.json_response({"template": template.key, "created": len(created), "tasks": created})


@routes.post("/api/tasks/broadcast")
async def broadcast(request: web.Request) -> web.Response:
    """A one-off task to every active person of the role at the chosen stores."""
    deps = request.app[DEPS]
    body = await read_body(request, BroadcastBody)
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        stores = list((await session.execute(select(Store).where(Store.code.in_(body.stores)))).scalars())
        missing = sorted(set(body.stores) - {s.code for s in stores})
        if missing:
            raise ApiError(422, f"stores: unknown store {missing[0]!r}")
        row = TaskBroadcast(title=body.title, body=body.body, proof=body.proof, role=body.role, created_at=now)
        session.add(row)
        await session.flush()
        people = await staff_by_store(session, [s.id for s in stores], body.role)
        due = now + timedelta(minutes=body.due_minutes)
        new = [
            NewTask(
                broadcast_key(row.id), "broadcast", body.title, body.body, body.proof, store, person,
                f"{period_key(local(now, store.timezone))}#{person.userid}", now, due,
                closes_at(due, due + timedelta(minutes=body.due_minutes), 0), body.points,
            )
            for store in stores for person in people.get(store.id, [])
        ]
        created = await create_tasks(session, deps.config, new, now)
    return web.json_response({"id": row.id, "created": len(created), "tasks": created}, status=201)


@routes.get("/api/tasks/{id}/answers")
async def answers(request: web.Request) -> web.Response:
    """{id} is the broadcast id that POST /api/tasks/broadcast answered; one row per person, answered or not."""
    deps = request.app[DEPS]
    ident = path_id(request)
    async with deps.sessions() as session:
        row = await session.get(TaskBroadcast, ident)
        if row is None:
            raise UnknownEntity("broadcast", ident)
        stmt = (
            select(TaskInstance, Store, Staff)
            .join(Store, Store.id == TaskInstance.store_id)
            .join(Staff, Staff.id == TaskInstance.assignee_id)
            .where(TaskInstance.template_key == broadcast_key(row.id))
            .order_by(Store.code, Staff.userid)
        )
        rows = (await session.execute(stmt)).all()
    out = [{**_row(t, s, a), "answer": t.answer} for t, s, a in rows]
    answered = sum(1 for t, _, _ in rows if t.state in ("done", "late_done"))
    return web.json_response(
        {"id": row.id, "title": row.title, "total": len(out), "answered": answered, "answers": out}
    )
