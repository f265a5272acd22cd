"""Property tests for the console's settings forms and safety-stock files: any input is a value or a Chinese
sentence saying what to fix, never an exception; every value a form accepts passes config.toml's own rules; and
through the app any form post is answered (saved, or 422 with a message), never 500."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from bot.config import AlertSettings, RulesSettings, TaskTemplate
from bot.console import settings_forms as forms
from bot.console.safety_file import SafetyFile, read_safety_file
from models.console_settings import SAFETY_MAX

PROPS = settings(max_examples=200, deadline=None, derandomize=True, database=None)
APP_PROPS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

WORDS = st.sampled_from(["店长", "督导", "总部", "manager", "admin", "老板", "0", "120", "60分钟", "default",
                         "low_stock", ":", "：", ",", "，", " ", "\n", "22:00-08:00", "到", "～", "-", "%", "天",
                         "１２", "²", "\x00", "9" * 12, "*", "0 9 * * *"])
TEXT = st.text(max_size=40) | st.lists(WORDS, max_size=12).map("".join)


def _answered(result: forms.Result) -> None:
    assert isinstance(result, forms.Parsed | forms.Invalid)
    if isinstance(result, forms.Invalid):
        assert result.message and any("\u4e00" <= ch <= "\u9fff" for ch in result.message)


@PROPS
@given(TEXT)
def test_whole_numbers(raw: str) -> None:
    result = forms.whole(raw, "滞销天数", lo=1, hi=365)
    _answered(result)
    if isinstance(result, forms.Parsed):
        assert 1 <= result.value <= 365
        RulesSettings(no_movement_days=result.value)


@PROPS
@given(TEXT)
def test_percentages(raw: str) -> None:
    result = forms.number(raw, "相差百分比", lo=0, hi=1000)
    _answered(result)
    if isinstance(result, forms.Parsed):
        RulesSettings(count_approval_percent=result.value)


@PROPS
@given(TEXT | st.from_regex(r"\s*\d{1,2}:\d{2}\s*[-~到]\s*\d{1,2}:\d{2}\s*", fullmatch=True))
def test_quiet_hours(raw: str) -> None:
    result = forms.quiet_hours(raw)
    _answered(result)
    if isinstance(result, forms.Parsed):
        AlertSettings(quiet_hours=result.value)


STEP = st.tuples(st.sampled_from(["店长", "督导", "总部", "manager", "supervisor", "admin"]), st.integers(0, 99999))
CHAIN = st.dictionaries(st.sampled_from(["default", "low_stock", "negative_stock", "no_movement", "campaign"]),
                        st.lists(STEP, min_size=1, max_size=4), min_size=1)


@PROPS
@given(TEXT | CHAIN.map(lambda c: "\n".join(f"{k}: " + ", ".join(f"{r} {m}" for r, m in v) for k, v in c.items())))
def test_escalation_chains(raw: str) -> None:
    result = forms.escalation(raw)
    _answered(result)
    if isinstance(result, forms.Parsed):
        alerts = AlertSettings(escalation=result.value)
        assert "default" in alerts.escalation
        again = forms.escalation(forms.escalation_text(result.value))  # what the page shows reads back the same
        assert again == result


FIELDS = st.fixed_dictionaries({
    "key": TEXT | st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
    "title": TEXT, "schedule": TEXT | st.sampled_from(["0 9 * * *", "30 21 * * 1-5", "99 9 * * *", "*/5 * * * *"]),
    "assignee_role": st.sampled_from(["staff", "manager", "admin", ""]),
    "proof": st.sampled_from(["photo", "count", "confirm", "text", "video"]),
    "due_minutes": TEXT, "points": TEXT, "stores": TEXT | st.sampled_from(["S001", "s001, S002", "S009"]),
    "body": TEXT,
})


@PROPS
@given(FIELDS)
def test_task_template_forms(form: dict[str, str]) -> None:
    result = forms.template(form, None, frozenset({"S001", "S002"}))
    _answered(result)
    if isinstance(result, forms.Parsed):
        try:
            TaskTemplate.model_validate(result.value)
        except ValueError as err:  # only the cron check is left to config.toml's rules
            assert "schedule" in str(err)


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


CELL = st.text(max_size=8) | st.integers(-10, 10**8).map(str) | st.sampled_from(["S001", "A001", "12", "１２", "5件"])


@PROPS
@given(st.binary(max_size=200) | st.lists(st.lists(CELL, max_size=4), max_size=6).map(
    lambda rows: "\n".join(",".join(r) for r in [["门店编码", "商品编码", "安全库存"], *rows]).encode()),
    st.sampled_from(["a.csv", "a.xlsx", "a.txt", "A.CSV"]))
def test_safety_files(data: bytes, name: str) -> None:
    parsed = read_safety_file(name, data)
    assert isinstance(parsed, SafetyFile)
    assert parsed.lines or parsed.errors
    for line in parsed.lines:
        assert 0 <= line.value <= SAFETY_MAX and line.store and line.sku


PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8) | st.sampled_from(["S001", "A001"])


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(st.lists(st.lists(PRINTABLE | st.integers(-5, 10**7) | st.none(), max_size=4), max_size=5))
def test_safety_xlsx_files(rows: list[list[object]]) -> None:
    parsed = read_safety_file("s.xlsx", _xlsx([["store", "sku", "safety_stock"], *rows]))
    assert parsed.lines or parsed.errors


async def test_any_rules_form_is_answered_through_the_app(client, chain) -> None:
    from tests.console_support import csrf_of, sign_in

    sign_in(client, "admin")
    csrf = csrf_of(await (await client.get("/console/settings")).text())

    names = ("no_movement_days", "count_approval_units", "count_approval_percent", "quiet_hours", "escalation")

    @APP_PROPS
    @given(st.fixed_dictionaries(dict.fromkeys(names, TEXT)))
    def run(form: dict[str, str]) -> None:
        forms_seen.append(form)

    forms_seen: list[dict[str, str]] = []
    run()
    for form in forms_seen:
        for path in ("/console/settings/rules", "/console/settings/escalation"):
            resp = await client.post(path, data={**form, "csrf": csrf}, allow_redirects=False)
            assert resp.status in (302, 422), (path, form)
            if resp.status == 422:
                assert "flash bad" in await resp.text()
