"""The foundation: config loading and overrides, the app's health, auth and stock endpoints, the CLI's exits."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_settings
from bot.errors import ConfigError
from bot.logs import RedactSecrets
from tests import TESTS
from tests.conftest import AppClient, auth
from tests.factories import Chain


def test_example_config_loads() -> None:
    settings = load_settings(TESTS.parent / "config.toml", env={})
    assert settings.server.port == 8080
    assert {t.key for t in settings.tasks} >= {"morning_check"}


def test_env_override_wins_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\n[wecom]\nsecret = "from-file"\n')
    s = load_settings(cfg, env={"STOREBOT_SERVER_PORT": "9100", "STOREBOT_WECOM_SECRET": "from-env"})
    assert s.server.port == 9100
    assert s.wecom.secret.get_secret_value() == "from-env"
    assert "from-env" not in repr(s)


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ('[server]\nport = "eighty"\n', {}, "server.port"),
        ("", {"STOREBOT_SERVER_PORT": "99999"}, "server.port"),
        ('[wecom]\nencoding_aes_key = "short"\n', {}, "wecom.encoding_aes_key"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url"),
        ('[alerts]\nquiet_hours = "late"\n', {}, "alerts.quiet_hours"),
        ('[[tasks]]\nkey = "x"\ntitle = "t"\nschedule = "not cron"\n', {}, "tasks.0.schedule"),
    ],
)
def test_bad_value_names_the_key(tmp_path: Path, toml: str, env: dict[str, str], key: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env=env)
    assert info.value.key == key


def test_serve_with_missing_secret_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[wecom]\ncorp_id = "ww1"\n')
    monkeypatch.delenv("STOREBOT_WECOM_SECRET", raising=False)
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "wecom.secret" in capsys.readouterr().err


def test_redaction_filter_blanks_secrets() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token is %s", ("s3cr3t-value",), None)
    RedactSecrets(["s3cr3t-value"]).filter(record)
    assert record.getMessage() == "token is ***"


async def test_healthz_and_metrics_need_no_token(client: AppClient) -> None:
    r = await client.get("/healthz")
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    r = await client.get("/metrics")
    assert r.status == 200
    assert "storebot_outbox_messages" in await r.text()


async def test_api_refuses_missing_or_wrong_token(client: AppClient, chain: Chain) -> None:
    r = await client.get("/api/stock", params={"store": "S001", "sku": "A001"})
    assert r.status == 401
    assert "error" in await r.json()
    r = await client.get("/api/stock", params={"store": "S001", "sku": "A001"}, headers=auth("wrong"))
    assert r.status == 401


async def test_stock_endpoint_answers_from_the_ledger(client: AppClient, chain: Chain) -> None:
    r = await client.get("/api/stock", params={"store": "S001", "sku": "A001"}, headers=auth())
    assert r.status == 200
    assert await r.json() == {"store": "S001", "sku": "A001", "on_hand": 20, "safety_stock": 5, "in_transit": 0}
    r = await client.get("/api/stock", params={"store": "S001", "sku": "6900000000011"}, headers=auth())
    assert (await r.json())["sku"] == "A001"


async def test_stock_endpoint_unknown_sku_is_404_with_error(client: AppClient, chain: Chain) -> None:
    r = await client.get("/api/stock", params={"store": "S001", "sku": "NOPE"}, headers=auth())
    assert r.status == 404
    assert "NOPE" in (await r.json())["error"]
    r = await client.get("/api/stock", params={"store": "S001"}, headers=auth())
    assert r.status == 400
