"""任务 / 积分 commands, task:done buttons and text answers to text tasks."""

from __future__ import annotations

from handlers.router import Router

router = Router("task")
