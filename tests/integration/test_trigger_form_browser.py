"""The cleanup DAG's trigger form in the real Airflow UI, driven in headless Chromium.

A real ``airflow api-server`` (the DAGs serialised into its metadata DB) serves Airflow's own
React trigger form; an admin logs in through the login form, opens the form on the DAG's page and
triggers runs: untouched, after switching the mode to "Live" and back and typing into and clearing
free fields, and (to show the control is real) with "Live" chosen. No scheduler runs, so the runs
stay queued: what matters is the conf the form submitted. It is read back through the REST API
and resolved by the function the DAG's first task uses (``resolve_policy`` with the DAG's params
and the run's conf), against the shipped policy (dry run).
"""

# The browser fixture of the audit-page test is imported by name and passed as an argument of that name.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.integration.test_audit_page_browser import _wait, browser  # noqa: F401 - fixture by name
from tools.airflow_env import REPO, airflow_env
from tools.airflow_stack import AirflowStack, simple_auth_env

pytestmark = pytest.mark.integration

ADMIN = ("admin", "trigger-pass-1")
DAG_ID = "atlassian_user_cleanup"
POLICY = REPO / "include" / "policy.yaml"


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[AirflowStack]:
    home = tmp_path / "ui-home"
    env = {
        **airflow_env(home, audit_dir=tmp_path / "audit", xcom_dir=tmp_path / "xcom"),
        **simple_auth_env(home, {ADMIN[0]: (ADMIN[1], "admin")}),
        "ATLASSIAN_CLEANUP_POLICY": str(POLICY),
    }
    stack = AirflowStack(env, home, components=("api-server",))
    stack.cli("db", "migrate")
    stack.cli("dags", "reserialize")  # what the dag-processor would do; the form needs the DAG
    with stack:
        yield stack


def _log_in(browser, base: str) -> None:
    browser.get(base + "/auth/login/")
    _wait(lambda: browser.find_elements(By.NAME, "username"), what="the login form")[0].send_keys(ADMIN[0])
    browser.find_element(By.NAME, "password").send_keys(ADMIN[1])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(lambda: browser.get_cookie("_token"), what="the session cookie")


def _open_form(browser, base: str):
    browser.get(f"{base}/dags/{DAG_ID}")

    def opened():
        # The page re-renders while it loads: a button found a moment ago may be gone.
        try:
            fields = browser.find_elements(By.ID, "element_mode")
            if fields:
                return fields[0]
            buttons = _buttons(browser, "Trigger")
            if buttons:
                buttons[0].click()
        except StaleElementReferenceException:
            pass
        return None

    return _wait(opened, what="the trigger form")


def _box(browser, name: str):
    """The text box of a free field (the form puts the id or the name on it or on its wrapper)."""
    found = browser.find_elements(By.CSS_SELECTOR, f"[id='element_{name}'], [name='element_{name}']")
    assert found, f"no field {name} in the form"
    element = found[0]
    if element.tag_name in ("input", "textarea"):
        return element
    return element.find_element(By.CSS_SELECTOR, "input, textarea")


def _buttons(browser, text: str) -> list:
    return [
        b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == text and b.is_displayed()
    ]


def _choose(browser, field, label: str) -> None:
    """Pick an option of a dropdown field by its label, as a user does (open, type, Enter)."""
    box = field.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    box.click()
    box.send_keys(label)
    box.send_keys(Keys.ENTER)
    _wait(lambda: label in field.text, what=f"{label!r} shown in the field")


def _type_and_clear(browser, name: str, text: str) -> None:
    box = _box(browser, name)
    box.send_keys(text)
    _wait(lambda: box.get_attribute("value") == text, what=f"{name} typed")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    _wait(lambda: box.get_attribute("value") == "", what=f"{name} cleared")
    box.send_keys(Keys.TAB)


def _submit(browser, api, before: int) -> dict:
    """Press the form's Trigger button; return the run it created (read through the REST API)."""
    browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()

    def created():
        runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", order_by="-run_after", limit=20)["dag_runs"]
        manual = [r for r in runs if r["run_type"] == "manual"]
        return manual[0] if len(manual) > before else None

    return _wait(created, what="the triggered run")


def _resolved_dry_run(conf: dict) -> bool:
    """The run's effective dry_run, resolved exactly as its first task does."""
    from airflow.dag_processing.dagbag import DagBag

    from atlassian_cleanup.operators.cleanup import resolve_policy

    dag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"}).dags[DAG_ID]
    params = {**{name: dag.params[name] for name in dag.params}, **conf}  # conf overrides the defaults
    return resolve_policy(str(POLICY), params, conf=conf, known_params=dag.params.keys()).dry_run


def test_untouched_and_toggled_back_forms_stay_dry(ui_server, browser):
    from atlassian_cleanup.decisions.policy import load_policy

    assert load_policy(POLICY).dry_run is True  # the shipped policy: a run that follows it is dry
    base = ui_server.base_url
    api = ui_server.client(*ADMIN)
    _log_in(browser, base)

    # (a) Untouched: the mode reads "As the policy says", the free fields are empty.
    mode = _open_form(browser, base)
    assert "As the policy says" in mode.text
    for name in ("inactivity_days", "warning_lead_days", "product_thresholds", "max_actions_per_run"):
        assert _box(browser, name).get_attribute("value") == "", (
            name
        )  # no "null", "{}" or "[]" that reads like a value
    untouched = _submit(browser, api, before=0)

    # (b) Toggled back: "Live" chosen and un-chosen, free fields typed into and cleared.
    mode = _open_form(browser, base)
    _choose(browser, mode, "Live: warning e-mails and Atlassian writes")
    _choose(browser, mode, "As the policy says (dry_run in the policy file)")
    _type_and_clear(browser, "inactivity_days", "30")
    _type_and_clear(browser, "warning_lead_days", "14, 7")
    _type_and_clear(browser, "max_actions_per_run", "5000")
    toggled = _submit(browser, api, before=1)

    # (c) The control is real: "Live" chosen and left submits a live run.
    mode = _open_form(browser, base)
    _choose(browser, mode, "Live: warning e-mails and Atlassian writes")
    live = _submit(browser, api, before=2)

    # The toggled-back form submitted exactly what the untouched one did.
    assert toggled["conf"] == untouched["conf"]
    assert untouched["conf"].get("mode") == "policy", untouched["conf"]
    assert toggled["conf"].get("mode") == "policy", toggled["conf"]
    assert live["conf"].get("mode") == "live", live["conf"]
    assert _resolved_dry_run(untouched["conf"]) is True
    assert _resolved_dry_run(toggled["conf"]) is True
    assert _resolved_dry_run(live["conf"]) is False
    # What was submitted: every other field kept the policy's value (empty, not a look-alike value).
    for conf in (untouched["conf"], toggled["conf"]):
        changed = {k: v for k, v in conf.items() if k != "mode" and v not in (None, "", "policy")}
        assert changed == {}, conf
