"""A faithful WeCom simulator: API side (tokens, errcodes, limits, media, cards) and user side (callbacks)."""

from __future__ import annotations


def run_sandbox(host: str = "127.0.0.1", port: int = 8090) -> int:
    print("storebot sandbox: not yet (lands with the WeCom-edge issue)")
    return 1
