"""Transfers between stores: the request → approve → ship → receive state machine and its stock moves."""

from __future__ import annotations
