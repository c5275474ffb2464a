"""The auditors' page through a real Airflow api-server, driven in headless Chromium.

Audits come from real runs of the daily DAG against the sandbox (a dry run, then two live days).
A separate ``airflow api-server`` process serves them with the plugin loaded from ``plugins/``,
exactly as in a deployment; Debian's chromium logs in through Airflow's own login form, opens the
page inside the UI, downloads a CSV and compares it with the file on disk. Anonymous access and
traversal attempts are checked against the same server, and a screenshot is decoded to prove the
chart was actually drawn.

Set ``ATLASSIAN_CLEANUP_SCREENSHOT=docs/audit-page.png`` to keep the screenshot (the README's
picture is made that way).
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.integration.test_live_lifecycle import LiveOrg
from tools.airflow_env import airflow_env
from tools.airflow_stack import AirflowStack, simple_auth_env

pytestmark = pytest.mark.integration

AUDITOR = ("auditor", "audit-pass-1")  # SimpleAuthManager role "viewer": read-only, like an auditor


# --------------------------------------------------------------------------------------------------
# A PNG reader for the screenshot check (8-bit RGB/RGBA, non-interlaced: what Chromium writes)
# --------------------------------------------------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert colour in (2, 6), colour
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows, channels


def _count_colour(png: bytes, hex_colour: str, tolerance: int = 12) -> int:
    width, _height, rows, channels = _png_pixels(png)
    target = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    count = 0
    for line in rows:
        for x in range(0, width * channels, channels):
            if all(abs(line[x + c] - target[c]) <= tolerance for c in range(3)):
                count += 1
    return count


# --------------------------------------------------------------------------------------------------
# Fixtures: real audits, a real api-server, a real browser
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def audited_runs(airflow_db, smtp_sink, tmp_path, monkeypatch) -> Path:
    """Audit files of a dry run and two live days of the daily DAG, in a folder of their own."""
    from atlassian_sandbox import SandboxConfig, SandboxServer
    from tests.integration.conftest import AS_OF

    folder = tmp_path / "audit"
    monkeypatch.setenv("ATLASSIAN_CLEANUP_AUDIT_DIR", str(folder))
    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=AS_OF)) as sandbox:
        state = {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
        org = LiveOrg(sandbox, tmp_path, monkeypatch, smtp_sink, state)
        org.write_policy(licensing={"billing": "monthly", "currency": "USD", "seat_price": 8.6})
        assert str(org.run(0, run_conf={"dry_run": True}).state) == "success"
        assert str(org.run(0).state) == "success"
        org.advance_clock(1)
        assert str(org.run(1).state) == "success"
    return folder


@pytest.fixture
def api_server(audited_runs: Path, tmp_path: Path) -> Iterator[AirflowStack]:
    home = tmp_path / "api-home"
    env = {
        **airflow_env(home, audit_dir=audited_runs, xcom_dir=tmp_path / "xcom"),
        **simple_auth_env(home, {AUDITOR[0]: (AUDITOR[1], "viewer")}),
    }
    stack = AirflowStack(env, home, components=("api-server",))
    stack.cli("db", "migrate")
    with stack:
        yield stack


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail(
            "the browser test needs Debian's chromium and chromedriver: "
            "apt-get install chromium chromium-driver (.ci/run installs them)"
        )
    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1100",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    # An explicit driver path: selenium must not try to download one (the machine may be offline).
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------------


def test_auditor_logs_in_sees_the_runs_and_downloads_the_exact_csv(api_server, audited_runs, browser):
    from selenium.webdriver.common.by import By

    from atlassian_cleanup.reports.audit import read_manifests
    from atlassian_cleanup.reports.audit_page import COLOUR_AFTER, COLOUR_BEFORE, COLOUR_RECLAIMED

    base = api_server.base_url
    manifests = read_manifests(audited_runs)
    assert [m["mode"] for m in manifests].count("live") == 2
    live = next(m for m in manifests if m["mode"] == "live" and m["summary"]["seats"]["total_reclaimed"] > 0)
    csv_on_disk = audited_runs / live["csv_file"]

    # Without an Airflow session: 401 for the page and for the files.
    for path in (
        "/atlassian-audit/",
        f"/atlassian-audit/files/{live['csv_file']}",
        "/atlassian-audit/api/runs",
    ):
        response = requests.get(base + path, timeout=30)
        assert response.status_code == 401, (path, response.status_code)
        assert "account_id" not in response.text

    # Log in through Airflow's own login form, as a read-only user.
    browser.get(base + "/auth/login/")
    _wait(lambda: browser.find_elements(By.NAME, "username"), what="the login form").pop().send_keys(
        AUDITOR[0]
    )
    browser.find_element(By.NAME, "password").send_keys(AUDITOR[1])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(lambda: browser.get_cookie("_token"), what="the session cookie")

    # The page inside the Airflow UI (Browse → Atlassian audit renders it in an iframe).
    browser.get(base + "/plugin/atlassian-audit")
    frame = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "iframe"), what="the plugin iframe")[0]
    assert frame.get_attribute("src").rstrip("/").endswith("/atlassian-audit")
    browser.switch_to.frame(frame)
    table = _wait(lambda: browser.find_elements(By.ID, "cleanup-runs"), what="the runs table")[0]
    listed = {row.get_attribute("data-run-id") for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert listed == {m["run_id"] for m in manifests}
    assert browser.find_element(By.ID, "total-reclaimed").text == str(
        sum(m["summary"]["seats"]["total_reclaimed"] for m in manifests if m["mode"] == "live")
    )
    browser.switch_to.default_content()

    # One run's view (what the DAG-run tab opens): verified against its manifest, then downloaded.
    query = urlencode({"dag_id": "atlassian_user_cleanup", "run_id": live["run_id"]})
    browser.get(f"{base}/atlassian-audit/?{query}")
    assert "CSV verified" in browser.find_element(By.ID, "verification").text
    browser.find_element(By.LINK_TEXT, "Download CSV").click()
    downloaded = browser.downloads / live["csv_file"]
    _wait(
        lambda: downloaded.exists() and not list(browser.downloads.glob("*.crdownload")), what="the download"
    )
    assert downloaded.read_bytes() == csv_on_disk.read_bytes()

    # Logged in, a traversal attempt still gets nothing (404, not the file).
    cookies = {"_token": browser.get_cookie("_token")["value"]}
    (audited_runs.parent / "secret.csv").write_text("do-not-serve\n", encoding="utf-8")
    for attempt in (
        "..%2Fsecret.csv",
        "%2E%2E%2Fsecret.csv",
        "..%2F..%2Fapi-home%2Fairflow.cfg",
        "restore%2F..%2F..%2Fsecret.csv",
    ):
        response = requests.get(f"{base}/atlassian-audit/files/{attempt}", cookies=cookies, timeout=30)
        assert response.status_code == 404, (attempt, response.status_code)
        assert "do-not-serve" not in response.text
    assert requests.get(
        f"{base}/atlassian-audit/files/{live['csv_file']}", cookies=cookies, timeout=30
    ).content == (csv_on_disk.read_bytes())

    # Screenshot-level check: the chart is really drawn (its three colours cover real pixels).
    browser.get(base + "/atlassian-audit/")
    _wait(lambda: browser.find_elements(By.ID, "seats-chart"), what="the chart")
    png = browser.get_screenshot_as_png()
    keep = os.environ.get("ATLASSIAN_CLEANUP_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(png)
    for colour, minimum in ((COLOUR_BEFORE, 300), (COLOUR_AFTER, 300), (COLOUR_RECLAIMED, 100)):
        assert _count_colour(png, colour) >= minimum, f"the chart's {colour} is not on screen"
