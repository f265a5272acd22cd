"""The console's login: WeCom web login through the sandbox, the session cookie, and what no session gets."""

from __future__ import annotations

from tests.conftest import auth


async def test_console_without_session_shows_login_and_no_data(client, chain) -> None:
    resp = await client.get("/console")
    assert resp.status == 200
    html = await resp.text()
    assert "用企业微信登录" in html
    assert "S001" not in html and "退出" not in html


async def test_admin_token_opens_no_console_page(client, chain) -> None:
    for path in ("/console", "/console/settings", f"/console?token={'test-admin-token'}"):
        resp = await client.get(path, headers=auth(), allow_redirects=False)
        html = await resp.text()
        assert "退出" not in html, path
        assert resp.status in (200, 302), path
