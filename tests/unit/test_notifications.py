"""Warning e-mails: rendering (escaping, dates, products) and sending through one SMTP session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlassian_cleanup.actions.notifications import (
    HEADER_ACCOUNT,
    HEADER_KIND,
    HEADER_WARNING,
    TEMPLATE_DIR,
    TEMPLATE_FILES,
    MissingEmailError,
    SmtpUnavailableError,
    TemplateError,
    UndeliverableAddressError,
    WarningSender,
    check_templates,
    digest_context,
    render_digest,
    render_warning,
    resolve_templates_dir,
    send_digest,
    smtp_address,
    warning_context,
)
from atlassian_cleanup.outcomes import StageOutcome
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


# --------------------------------------------------------------------------------------------------
# MIME, headers, time zones, request link (through a real local SMTP server)
# --------------------------------------------------------------------------------------------------


def test_multipart_alternative_text_then_html_with_headers(sink: Any) -> None:
    with WarningSender(restore_url="https://help.acme.example/restore") as send:
        send(warn_row())
    (message,) = sink.messages()
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    # RFC 2046: the preferred alternative comes last.
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert message["To"] == "siobhan@acme.example"
    assert message["From"] == "atlassian-cleanup@acme.example"
    assert message["Date"]
    assert message["Message-ID"].endswith("@acme.example>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message[HEADER_ACCOUNT] == "557058:aaaa"
    assert message[HEADER_WARNING] == "14"
    text = parts[0].get_content()
    html = parts[1].get_content()
    # The hostile display name: inert in HTML, verbatim in text/plain (which is not HTML).
    assert "Siobhán O&#39;Brien &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "Hello Siobhán O'Brien <script>alert(1)</script>," in text
    assert 'href="https://help.acme.example/restore"' in html
    assert "request it here: https://help.acme.example/restore" in text


def test_hostile_name_cannot_inject_headers(sink: Any) -> None:
    row = warn_row(name="Eve\r\nBcc: victim@evil.example", email="eve@acme.example")
    with WarningSender(org_name="Acme\nBcc: x@evil.example") as send:
        send(row)
    (message,) = sink.messages()
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]


def test_dates_in_the_users_time_zone() -> None:
    west = warning_context(warn_row(time_zone="America/New_York"))
    # The action runs at 00:00 UTC on 10 December: still the 9th in New York.
    assert west["action_date"] == "Wednesday 9 December 2026"
    assert (west["action_time"], west["time_zone"]) == ("19:00", "America/New_York")
    assert west["action_date_iso"] == "2026-12-10"
    _subject, _html, text = render_warning(warn_row(time_zone="Asia/Tokyo"))
    assert "On Thursday 10 December 2026 (from 09:00 Asia/Tokyo time; action date 2026-12-10)" in text
    assert "Dates are in Asia/Tokyo time." in text
    # Last activity at 23:30 UTC is the next day in Tokyo.
    late = warn_row(time_zone="Asia/Tokyo", product_last_active=json.dumps({"jira": "2026-07-18T23:30:00Z"}))
    assert "last used Sunday 19 July 2026" in render_warning(late)[2]
    # Unknown or missing zone: UTC, said so.
    assert warning_context(warn_row(time_zone="Mars/Olympus"))["time_zone"] == "UTC"
    assert warning_context(warn_row())["action_time"] == "00:00"


def test_without_request_link_no_link_is_shown() -> None:
    _subject, html, text = render_warning(warn_row())
    assert "href" not in html
    assert "request it here" not in text


def test_missing_email_is_reported_not_failed() -> None:
    from atlassian_cleanup.actions.enforcement import RecipientNotAddressable

    assert issubclass(MissingEmailError, RecipientNotAddressable)


def test_unreachable_relay_fails_each_send_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.smtp_sink import free_port

    closed = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": free_port(),  # nothing listens here
            "extra": {"from_email": "a@acme.example", "disable_ssl": True, "disable_tls": True},
        }
    )
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", closed)
    with WarningSender() as send:
        for _ in range(2):
            with pytest.raises(SmtpUnavailableError, match="unavailable"):
                send(warn_row())
        assert send.sent == 0


def test_refused_recipient_fails_only_that_message(sink: Any) -> None:
    import smtplib

    sink.refuse("siobhan@acme.example")
    try:
        with WarningSender() as send:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                send(warn_row())
            send(warn_row(account_id="557058:dddd", email="ok@acme.example"))
    finally:
        sink.refuse()
    assert [m["To"] for m in sink.messages()] == ["ok@acme.example"]


# --------------------------------------------------------------------------------------------------
# International addresses: IDNA domains, SMTPUTF8 local parts (through a real aiosmtpd relay)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected", "needs_smtputf8"),
    [
        ("ada@acme.example", "ada@acme.example", False),
        # IDNA 2008 (UTS #46): the A-label is independent of how the name was typed.
        ("anna@bücher.example", "anna@xn--bcher-kva.example", False),
        ("anna@Bücher.Example", "anna@xn--bcher-kva.example", False),
        ("anna@straße.de", "anna@xn--strae-oqa.de", False),  # IDNA 2003 would send it to strasse.de
        ("anna@例え.テスト", "anna@xn--r8jz45g.xn--zckzah", False),
        ("jürgen@acme.example", "jürgen@acme.example", True),
        ("jürgen@bücher.example", "jürgen@xn--bcher-kva.example", True),
    ],
)
def test_smtp_address_encodes_the_domain_and_flags_utf8_local_parts(address, expected, needs_smtputf8):
    assert smtp_address(address) == (expected, needs_smtputf8)


@pytest.mark.parametrize("address", ["anna@-bücher.example", "anna@bü‍cher.example", "anna@bücher..example"])
def test_an_unencodable_domain_is_reported(address):
    with pytest.raises(UndeliverableAddressError, match="cannot be encoded"):
        smtp_address(address)


def test_an_undeliverable_address_is_reported_not_failed() -> None:
    from atlassian_cleanup.actions.enforcement import RecipientNotAddressable

    assert issubclass(UndeliverableAddressError, RecipientNotAddressable)


@pytest.fixture(params=[True, False], ids=["relay-with-smtputf8", "relay-without-smtputf8"])
def any_relay(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with SmtpSink(tmp_path / "mail", smtputf8=request.param) as smtp:
        info = {"base_url": "http://unused", "admin_api_key": "x", "org_id": "o", "directory_id": "d"}
        info |= {"site_email": "e@x.example", "site_token": "t"}
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT", connection_env(info, smtp.port)["AIRFLOW_CONN_SMTP_DEFAULT"]
        )
        smtp.smtputf8 = request.param
        yield smtp


def test_an_international_domain_goes_out_idna_encoded_through_any_relay(any_relay: Any) -> None:
    with WarningSender() as send:
        assert send(warn_row(email="anna@bücher.example")) == "anna@xn--bcher-kva.example"
    [(recipients, options)] = any_relay.envelopes
    assert recipients == ["anna@xn--bcher-kva.example"]
    assert "SMTPUTF8" not in options  # plain ASCII: no extension needed
    (message,) = any_relay.messages()
    assert message["To"] == "anna@xn--bcher-kva.example"


def test_a_utf8_local_part_uses_smtputf8_or_is_reported(any_relay: Any) -> None:
    with WarningSender() as send:
        if any_relay.smtputf8:
            assert send(warn_row(email="jürgen@bücher.example")) == "jürgen@xn--bcher-kva.example"
        else:
            with pytest.raises(UndeliverableAddressError, match="SMTPUTF8") as caught:
                send(warn_row(email="jürgen@bücher.example"))
            assert "jürgen" not in str(caught.value)  # the audit row has the address; logs need not
        send(warn_row(account_id="557058:eeee", email="ok@acme.example"))  # the session goes on
    recipients = [rcpt for rcpt, _options in any_relay.envelopes]
    if any_relay.smtputf8:
        assert recipients == [["jürgen@xn--bcher-kva.example"], ["ok@acme.example"]]
        assert "SMTPUTF8" in any_relay.envelopes[0][1]
        assert any_relay.messages()[0]["To"] == "jürgen@xn--bcher-kva.example"
    else:
        assert recipients == [["ok@acme.example"]]


def test_the_digest_counts_addresses_the_relay_cannot_take() -> None:
    plan = [*_digest_plan(), warn_row(account_id="u1", email="jürgen@acme.example")]
    context = digest_context(
        plan=plan,
        outcomes={
            "a1": StageOutcome("done", "e-mailed"),
            "a2": StageOutcome("reported", "no e-mail"),
            "u1": StageOutcome("reported", "needs SMTPUTF8"),
        },
        run_id="scheduled__2026-11-26T00:00:00+00:00",
        as_of="2026-11-26",
        mode="live",
        audit_file="audit.csv",
    )
    assert (context["no_email"], context["undeliverable"]) == (1, 1)
    _subject, html, text = render_digest(context)
    assert "Users whose address the relay cannot take (not warned, reported in the audit" in text
    assert "Address the relay cannot take (not warned)" in html


def test_digest_to_an_admin_address_the_relay_cannot_take_skips_only_that_address(any_relay: Any) -> None:
    context = digest_context(
        plan=[], outcomes={}, run_id="r", as_of="2026-11-26", mode="live", audit_file="a.csv"
    )
    send_digest(context, to=["jürgen@acme.example", "admin@bücher.example"])
    [(recipients, _options)] = any_relay.envelopes
    expected = ["admin@xn--bcher-kva.example"]
    assert recipients == (["jürgen@acme.example", *expected] if any_relay.smtputf8 else expected)


# --------------------------------------------------------------------------------------------------
# Template override and start-up validation
# --------------------------------------------------------------------------------------------------


def _copy_templates(target: Path) -> Path:
    target.mkdir()
    for name in TEMPLATE_FILES:
        (target / name).write_text((TEMPLATE_DIR / name).read_text(encoding="utf-8"), encoding="utf-8")
    return target


def test_shipped_templates_are_valid() -> None:
    check_templates()


def test_override_directory_is_used(tmp_path: Path) -> None:
    custom = _copy_templates(tmp_path / "mine")
    (custom / "warning_email.txt").write_text(
        "Hi {{ name }}, see you on {{ action_date }}.\n", encoding="utf-8"
    )
    check_templates(custom)
    assert render_warning(warn_row(), templates_dir=custom)[2] == (
        "Hi Siobhán O'Brien <script>alert(1)</script>, see you on Thursday 10 December 2026.\n"
    )


def test_missing_template_is_named(tmp_path: Path) -> None:
    custom = _copy_templates(tmp_path / "mine")
    (custom / "warning_email.html").unlink()
    with pytest.raises(TemplateError, match=r"warning_email\.html: missing"):
        check_templates(custom)
    check_templates(custom, ("admin_digest.txt",))  # the digest alone is still fine


def test_unknown_placeholder_names_file_and_placeholder(tmp_path: Path) -> None:
    custom = _copy_templates(tmp_path / "mine")
    (custom / "warning_email.txt").write_text("Dear {{ first_name }}\n", encoding="utf-8")
    (custom / "admin_digest.html").write_text(
        "{% for row in actions %}{{ row.nmae }}{% endfor %}", encoding="utf-8"
    )
    with pytest.raises(TemplateError) as excinfo:
        check_templates(custom)
    message = str(excinfo.value)
    assert "warning_email.txt: unknown placeholder 'first_name'" in message
    assert "admin_digest.html" in message
    assert "nmae" in message
    assert "nothing was sent" in message


def test_syntax_error_and_missing_directory(tmp_path: Path) -> None:
    custom = _copy_templates(tmp_path / "mine")
    (custom / "warning_email.txt").write_text("{% if name %}unclosed\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"warning_email\.txt, line \d+"):
        check_templates(custom)
    with pytest.raises(TemplateError, match="does not exist"):
        check_templates(tmp_path / "nowhere")


def test_sender_validates_templates_before_connecting(tmp_path: Path) -> None:
    custom = _copy_templates(tmp_path / "mine")
    (custom / "warning_email.html").write_text("{{ nope }}", encoding="utf-8")
    # No SMTP connection is configured in this test: the template error comes first.
    with pytest.raises(TemplateError, match="nope"), WarningSender(templates_dir=custom):
        pass


def test_relative_templates_dir_is_relative_to_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "conf" / "policy.yaml"
    assert resolve_templates_dir("mail", policy) == tmp_path / "conf" / "mail"
    assert resolve_templates_dir(None, policy) == TEMPLATE_DIR


# --------------------------------------------------------------------------------------------------
# Admin digest
# --------------------------------------------------------------------------------------------------


def _digest_plan() -> list[dict[str, Any]]:
    return [
        warn_row(account_id="a1"),
        warn_row(account_id="a2", email=None),
        {"account_id": "s1", "proposed_action": "suspend", "protected_by": "", "email": "s@x.example"},
        {"account_id": "p1", "proposed_action": "none", "protected_by": "group:vip"},
        {"account_id": "p2", "proposed_action": "none", "protected_by": "api_user"},
        {"account_id": "n1", "proposed_action": "none", "protected_by": ""},
    ]


def test_digest_figures() -> None:
    context = digest_context(
        plan=_digest_plan(),
        outcomes={
            "a1": StageOutcome("done", "14-day warning e-mailed"),
            "a2": StageOutcome("reported", "no e-mail"),
            "s1": StageOutcome("failed", "500"),
        },
        run_id="scheduled__2026-11-26T00:00:00+00:00",
        as_of="2026-11-26",
        mode="live",
        audit_file="atlassian-user-audit_2026-11-26.csv",
        audit_page_url="https://airflow.acme.example/audit",
        failed_tasks=["apply_actions"],
    )
    assert {row["action"]: row["count"] for row in context["actions"]} == {"none": 3, "suspend": 1, "warn": 2}
    outcomes = {
        row["action"]: {o["kind"]: o["count"] for o in row["outcomes"]} for row in context["outcomes"]
    }
    assert outcomes == {"suspend": {"failed": 1}, "warn": {"done": 1, "reported": 1}}
    assert (context["protected"], context["no_email"]) == (2, 1)
    assert (context["failed_users"], context["errors"]) == (1, 2)
    subject, html, text = render_digest(context)
    assert subject == "Atlassian user cleanup 2026-11-26 (live): 3 planned, 2 errors"
    assert "  - warn: 2" in text
    assert "  - warn: done 1, reported 1" in text
    assert "Protected accounts: 2" in text
    assert "failed tasks: apply_actions" in text
    assert "Audit CSV: atlassian-user-audit_2026-11-26.csv" in text
    assert 'href="https://airflow.acme.example/audit"' in html
    assert "Users without a visible e-mail address (not e-mailed, reported in the audit): 1" in text
    # The user who cannot be e-mailed is listed by name: the digest is their warning.
    assert (
        "Users who cannot be e-mailed, listed here instead of warned and actioned after the same notice "
        "period (warning.without_email: action_after_notice): 1"
    ) in text
    assert (
        "  - a2 (Siobhán O'Brien <script>alert(1)</script>): 14-day warning stage; suspend on 2026-12-10 "
        in text
    )
    assert "<script>" not in html  # names are escaped in the HTML part
    assert "Policy warnings" not in text


def test_digest_lists_users_without_email_from_the_first_warning_until_actioned() -> None:
    plan = [
        warn_row(account_id="w1", email=None, rule="final_warning"),
        warn_row(account_id="w2", email="  ", rule="warning_window"),  # blank: no usable address
        {**warn_row(account_id="np", email=None), "proposed_action": "none", "rule": "notice_period"},
        {**warn_row(account_id="aw", email=None), "proposed_action": "none", "rule": "already_warned"},
        {
            **warn_row(account_id="act", email=None),
            "proposed_action": "suspend",
            "rule": "inactive_all_products",
        },
        {**warn_row(account_id="ok", email="ok@acme.example")},  # e-mailed: not listed
        {**warn_row(account_id="prot", email=None), "protected_by": "group:vip", "proposed_action": "none"},
        {**warn_row(account_id="idle", email=None), "proposed_action": "none", "rule": "active"},
    ]
    context = digest_context(
        plan=plan, outcomes={}, run_id="r", as_of="2026-11-26", mode="live", audit_file="a.csv"
    )
    listed = {user["account_id"]: user["what"] for user in context["unaddressable"]}
    assert listed == {
        "w1": "14-day warning stage; suspend on 2026-12-10 at the earliest",
        "w2": "14-day warning stage; suspend on 2026-12-10 at the earliest",
        "np": "notice period running; suspend on 2026-12-10 at the earliest",
        "aw": "notice period running; suspend on 2026-12-10 at the earliest",
        "act": "suspend in this run, after the notice period",
    }
    held = digest_context(
        plan=plan, outcomes={}, run_id="r", as_of="2026-11-26", mode="live", audit_file="a.csv",
        without_email="hold",
    )  # fmt: skip
    assert (
        held["unaddressable"][0]["what"] == "held: no suspend without a warning (warning.without_email: hold)"
    )
    _, html, text = render_digest(held)
    assert "Users who cannot be e-mailed, held: never actioned without a warning" in text
    assert "Held: never actioned without a warning" in html


def test_digest_lists_at_most_200_users_by_name() -> None:
    plan = [warn_row(account_id=f"u{i}", email=None) for i in range(205)]
    context = digest_context(
        plan=plan, outcomes={}, run_id="r", as_of="2026-11-26", mode="live", audit_file="a.csv"
    )
    assert (context["unaddressable_count"], len(context["unaddressable"])) == (205, 200)
    _, _, text = render_digest(context)
    assert "  - ... and 5 more in the audit CSV" in text


def test_digest_shows_the_policy_warnings() -> None:
    context = digest_context(
        plan=_digest_plan(), outcomes={}, run_id="r", as_of="2026-11-26", mode="live", audit_file="a.csv",
        policy_warnings=["protected: nobody is protected beyond the built-in protections."],
    )  # fmt: skip
    _, html, text = render_digest(context)
    assert "Policy warnings (accepted, but check they are meant):\n  - protected: nobody is protected" in text
    assert "<li>protected: nobody is protected beyond the built-in protections.</li>" in html


def test_digest_dry_run_says_so_and_escapes(sink: Any) -> None:
    context = digest_context(
        plan=_digest_plan(),
        outcomes={"a1": StageOutcome("planned", "would email a1")},
        run_id="manual__<b>x</b>",
        as_of="2026-11-26",
        mode="dry_run",
        audit_file="audit.csv",
    )
    subject = send_digest(context, to=["admin@acme.example", "ops@acme.example"])
    assert "(DRY RUN)" in subject
    (message,) = sink.messages()
    assert message["To"] == "admin@acme.example, ops@acme.example"
    assert message[HEADER_KIND] == "digest"
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "DRY RUN (nothing was changed in Atlassian and no user was e-mailed)" in text
    assert "manual__&lt;b&gt;x&lt;/b&gt;" in html
    assert "Audit page" not in text  # no audit_page_url configured


def test_digest_says_who_triggered_with_which_overrides_and_who_approved() -> None:
    common = {
        "plan": _digest_plan(),
        "outcomes": {},
        "run_id": "manual__2026-11-26",
        "as_of": "2026-11-26",
        "mode": "live",
        "audit_file": "audit.csv",
    }
    capped = digest_context(
        **common,
        run={
            "triggered_by": "alice <ops>",
            "overrides": {"mode": "live", "max_actions_per_run": 200, "warning_lead_days": [7, 1]},
            "approval": {
                "required": True,
                "decision": "approved",
                "by": "bob",
                "at": "2026-11-26T09:12:03Z",
                "summary": "approved by bob at 2026-11-26T09:12:03Z",
            },
        },
    )
    _, html, text = render_digest(capped)
    assert "Triggered by: alice <ops>" in text
    assert "Run overrides: mode=live, max_actions_per_run=200, warning_lead_days=[7, 1]" in text
    assert "Approval: approved by bob at 2026-11-26T09:12:03Z" in text
    assert "alice &lt;ops&gt;" in html
    assert "<code>max_actions_per_run=200</code>" in html
    assert "approved by bob at 2026-11-26T09:12:03Z" in html

    scheduled = digest_context(
        **common,
        run={
            "triggered_by": "scheduler",
            "overrides": {},
            "approval": {"required": False, "decision": "not_needed", "summary": "not needed: dry run"},
        },
    )
    _, html, text = render_digest(scheduled)
    assert "Triggered by: scheduler" in text
    assert "Run overrides: none (the policy file as it is)" in text
    assert "Approval" not in text  # nothing to approve: no line
    assert "Approval" not in html
