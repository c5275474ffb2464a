"""Every form of a credential stays out of exception texts and logs, even when a server echoes it."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from atlassian_cleanup.client.hooks import AtlassianAdminHook, AtlassianSiteHook
from atlassian_cleanup.client.retry import AtlassianApiError, credential_forms
from tests.fake_atlassian import ADMIN_KEY, SITE_EMAIL, SITE_TOKEN, FakeAtlassian, Reply, Request

#: The three forms, computed independently of the code under test.
BASIC = base64.b64encode(f"{SITE_EMAIL}:{SITE_TOKEN}".encode()).decode()
FORMS = (SITE_TOKEN, BASIC, ADMIN_KEY)


def echo(status: int):
    def script(request: Request) -> Reply:
        headers = json.dumps(request.headers)
        return Reply(status, {"errorMessages": [f"rejected: {headers}"], "message": headers})

    return script


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500, 502])
@pytest.mark.parametrize("hook_class", [AtlassianAdminHook, AtlassianSiteHook])
def test_an_error_body_echoing_the_request_headers_leaks_no_credential_form(
    status: int, hook_class: type, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeAtlassian(echo(status)) as fake:
        for key, value in fake.connections().items():
            monkeypatch.setenv(key, value)
        with hook_class() as hook, pytest.raises(AtlassianApiError) as raised:
            hook._request("GET", "/rest/api/3/myself")
        sent = fake.calls[0].headers["Authorization"]
    # The server really was sent, and really echoed, the credential.
    assert sent in (f"Basic {BASIC}", f"Bearer {ADMIN_KEY}")
    text = str(raised.value) + repr(raised.value.message)
    chained = raised.value.__cause__
    while chained is not None:
        text += str(chained)
        chained = chained.__cause__
    logged = caplog.text
    for form in FORMS:
        assert form not in text
        assert form not in logged
    assert "***" in text


def test_every_derived_form_is_registered_with_airflows_secrets_masker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact
    from airflow.sdk.log import mask_secret  # noqa: F401 - the API the hooks use

    with FakeAtlassian(echo(200)) as fake:
        for key, value in fake.connections().items():
            monkeypatch.setenv(key, value)
        with AtlassianSiteHook() as site, AtlassianAdminHook() as admin:
            site.get_conn()
            admin.get_conn()
    line = f"Authorization: Basic {BASIC} / Bearer {ADMIN_KEY} / token {SITE_TOKEN}"
    masked = redact(line)
    for form in FORMS:
        assert form not in masked


def test_credential_forms_cover_basic_and_bearer() -> None:
    assert set(credential_forms(SITE_TOKEN, SITE_EMAIL)) >= {SITE_TOKEN, BASIC}
    assert credential_forms(ADMIN_KEY) == (ADMIN_KEY,)
    assert credential_forms(None) == ()
