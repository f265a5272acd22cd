"""`storebot demo`: bot + sandbox + a seeded sample chain on a temporary SQLite database."""

from __future__ import annotations


def run_demo(port: int = 8080, sandbox_port: int = 8090, keep: bool = False) -> int:
    print("storebot demo: not yet")
    return 1
