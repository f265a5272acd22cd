"""The console's login: WeCom web login through the sandbox, the session cookie, and what no session gets."""

from __future__ import annotations

from tests.conftest import auth
from tests.console_support import sign_in


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


async def test_signed_in_person_sees_the_shell_with_name_and_role(client, chain) -> None:
    sign_in(client, "m1")
    resp = await client.get("/console")
    html = await resp.text()
    assert resp.status == 200
    assert "王店长" in html or "m1" in html
    for label in ("库存", "任务", "调拨", "人员", "成效", "客户", "设置", "退出"):
        assert label in html
