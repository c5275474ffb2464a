"""Warning e-mails: rendering (escaping, dates, products) and sending through one SMTP session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlassian_cleanup.notifications import (
    TEMPLATE_DIR,
    MissingEmailError,
    WarningSender,
    render_warning,
)
from tools.airflow_env import connection_env
from tools.smtp_sink import SmtpSink


def warn_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "account_id": "557058:aaaa",
        "email": "siobhan@acme.example",
        "name": "Siobhán O'Brien <script>alert(1)</script>",
        "proposed_action": "warn",
        "planned_action": "suspend",
        "products_to_remove": [],
        "action_date": "2026-12-10",
        "days_inactive": 131,
        "product_last_active": json.dumps(
            {"confluence": None, "jira": "2026-07-18T09:30:00Z"}, sort_keys=True
        ),
        "warning_lead_days": 14,
        "reason": "Inactive on every product for 131 days",
    }
    row.update(overrides)
    return row


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def test_templates_live_in_include() -> None:
    assert Path(__file__).resolve().parents[2] / "include" / "templates" == TEMPLATE_DIR
    assert (TEMPLATE_DIR / "warning_email.html").is_file()


def test_html_escapes_names_and_plain_text_does_not() -> None:
    subject, html, text = render_warning(warn_row())
    assert "<script>" not in html
    assert "Siobhán O&#39;Brien &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Siobhán O'Brien <script>alert(1)</script>" in text  # text/plain is not HTML
    assert "<script>" not in subject


def test_says_what_when_why_and_how_to_keep_access() -> None:
    subject, html, text = render_warning(
        warn_row(), org_name="Acme", restore_url="https://help.acme.example/r"
    )
    assert (
        subject
        == "[Acme] Action needed: your Atlassian access will be suspended on Thursday 10 December 2026"
    )
    for body in (html, text):
        assert "Thursday 10 December 2026" in body
        assert "2026-12-10" in body
        assert "suspended" in body
        assert "131 days" in body
        assert "last activity on Saturday 18 July 2026" in body
        assert "Confluence" in body
        assert "never used" in body
        assert "log in to Confluence and Jira before Thursday 10 December 2026" in body
        assert "https://help.acme.example/r" in body
    assert 'href="https://help.acme.example/r"' in html
    assert "14 days before" in html


def test_remove_product_access_names_the_products() -> None:
    row = warn_row(planned_action="remove_product_access", products_to_remove=["confluence"])
    subject, html, text = render_warning(row)
    assert subject == "Action needed: your Confluence access will be removed on Thursday 10 December 2026"
    assert "your access to Confluence will be removed" in text
    assert "you have never used Confluence" in text
    assert "Jira" not in text  # still in use: not part of this warning
    assert "log in to Confluence before" in html
    assert "service desk" not in text  # no restore URL given


def test_deactivate_and_unknown_activity() -> None:
    row = warn_row(planned_action="deactivate", product_last_active="{}", days_inactive=None, name=None)
    _subject, html, text = render_warning(row)
    assert "deactivated" in text
    assert "Hello there" in text
    assert "no activity recorded" in html
    assert "any Atlassian product" in text


# --------------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with SmtpSink(tmp_path / "mail") as smtp:
        info = {"base_url": "http://unused", "admin_api_key": "x", "org_id": "o", "directory_id": "d"}
        info |= {"site_email": "e@x.example", "site_token": "t"}
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT", connection_env(info, smtp.port)["AIRFLOW_CONN_SMTP_DEFAULT"]
        )
        yield smtp


def test_sends_two_messages_in_one_session(sink: Any) -> None:
    rows = [warn_row(), warn_row(account_id="557058:bbbb", email="lee@acme.example", name="Lee")]
    with WarningSender(org_name="Acme") as send:
        hook = send._hook
        assert send(rows[0]) == "siobhan@acme.example"
        assert send(rows[1]) == "lee@acme.example"
        assert send._hook is hook  # one SMTP session for the batch
        assert send.sent == 2
    messages = sink.messages()
    assert [m["To"] for m in messages] == ["siobhan@acme.example", "lee@acme.example"]
    assert messages[0]["From"] == "atlassian-cleanup@acme.example"
    assert messages[0]["Subject"].startswith("[Acme] Action needed")
    assert messages[0]["Auto-Submitted"] == "auto-generated"
    html = messages[0].get_body(preferencelist=("html",)).get_content()
    assert "&lt;script&gt;" in html
    assert "<script>" not in html


def test_missing_email_fails_only_that_row(sink: Any) -> None:
    with WarningSender() as send:
        with pytest.raises(MissingEmailError, match="no e-mail address for account 557058:aaaa"):
            send(warn_row(email=None))
        send(warn_row(account_id="557058:cccc", email="ok@acme.example"))
    assert [m["To"] for m in sink.messages()] == ["ok@acme.example"]


def test_sender_outside_with_block_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="with"):
        WarningSender().send(warn_row())
