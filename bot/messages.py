"""Message texts: jinja2 templates under templates/messages, zh-CN first, rendered with strict undefined."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("templates", "."),
        undefined=StrictUndefined,
        autoescape=False,  # chat text, not HTML; dashboard pages turn escaping on themselves
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    return env


def render(name: str, **context: Any) -> str:
    """Render templates/messages/<name>.j2 to a chat text, trimmed."""
    return environment().get_template(f"messages/{name}.j2").render(**context).strip()
