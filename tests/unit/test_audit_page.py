"""The audit page app, in-process (FastAPI TestClient); the browser test covers the real api-server."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from atlassian_cleanup.reports.audit import write_audit
from atlassian_cleanup.reports.audit_page import (
    COLOUR_AFTER,
    COLOUR_BEFORE,
    authorize,
    create_app,
    seat_series,
    seats_chart_svg,
    totals,
)

REPO = Path(__file__).resolve().parents[2]


def _seats(before: int, after: int, *, projected: bool = False, saving: float | None = None) -> dict:
    return {
        "projected": projected,
        "total_before": before,
        "total_after": after,
        "total_reclaimed": before - after,
        "priced": saving is not None,
        "currency": "USD",
        "billing": "monthly",
        "saving_realised": "next monthly bill",
        "estimated_saving_per_month": saving,
        "estimated_saving_per_year": None if saving is None else saving * 12,
    }


def _run(folder: Path, run_id: str, as_of: str, mode: str, seats: dict, names=("Ada",)) -> object:
    rows = [
        {"account_id": f"{run_id}-{i}", "name": name, "proposed_action": "suspend"}
        for i, name in enumerate(names)
    ]
    return write_audit(
        rows,
        folder,
        run_id=run_id,
        as_of=as_of,
        mode=mode,
        summary={"seats": seats, "by_action": {"suspend": len(rows)}},
    )


@pytest.fixture
def audit_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    _run(folder, "manual__dry", "2026-11-01", "dry_run", _seats(100, 90, projected=True, saving=86.0))
    _run(folder, "scheduled__2026-11-02", "2026-11-02", "live", _seats(100, 95, saving=43.0))
    _run(folder, "scheduled__2026-11-03", "2026-11-03", "live", _seats(95, 92, saving=25.8))
    (tmp_path / "outside.csv").write_text("secret,data\n", encoding="utf-8")
    return folder


@pytest.fixture
def client(audit_folder: Path) -> TestClient:
    app = create_app(audit_folder)
    app.dependency_overrides[authorize] = lambda: None
    return TestClient(app)


def test_anonymous_requests_get_401(audit_folder):
    anonymous = TestClient(create_app(audit_folder))
    name = next(audit_folder.glob("*.csv")).name
    for path in ("/", f"/files/{name}", "/api/runs", "/static/audit_page.css"):
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert "secret" not in response.text
        assert "Ada" not in response.text


def test_page_lists_runs_newest_first_with_links_and_figures(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.text
    first, second, third = (
        page.index(f'data-run-id="{r}"')
        for r in ("scheduled__2026-11-03", "scheduled__2026-11-02", "manual__dry")
    )
    assert first < second < third
    assert "/files/atlassian-user-audit_2026-11-03_scheduled__2026-11-03.csv" in page
    assert "/files/atlassian-user-audit_2026-11-03_scheduled__2026-11-03.manifest.json" in page
    # Headline: live runs only (the dry run's projection is not money saved).
    assert 'id="total-reclaimed">8<' in page
    assert "68.80 USD" in page
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_download_returns_the_file_on_disk_byte_for_byte(client, audit_folder):
    for path in sorted(audit_folder.iterdir()):
        response = client.get(f"/files/{path.name}")
        assert response.status_code == 200
        assert response.content == path.read_bytes()
        assert f'filename="{path.name}"' in response.headers["content-disposition"]
    csv_response = client.get(f"/files/{next(audit_folder.glob('*.csv')).name}")
    assert csv_response.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize(
    "path",
    [
        "/files/../outside.csv",
        "/files/..%2Foutside.csv",
        "/files/%2E%2E%2Foutside.csv",
        "/files/..%5Coutside.csv",
        "/files/%2Fetc%2Fpasswd",
        "/files/.hidden.csv",
        "/files/notes.txt",
        "/files/restore/..%2F..%2Foutside.csv",
        "/files/link.csv",
    ],
)
def test_traversal_and_foreign_names_get_nothing(client, audit_folder, path):
    (audit_folder / "link.csv").symlink_to(audit_folder.parent / "outside.csv")
    (audit_folder / "notes.txt").write_text("not an audit file", encoding="utf-8")
    response = client.get(path)
    assert response.status_code == 404
    assert "secret" not in response.text


def test_run_view_verifies_the_csv_against_its_manifest(client, audit_folder):
    page = client.get(
        "/", params={"run_id": "scheduled__2026-11-02", "dag_id": "atlassian_user_cleanup"}
    ).text
    assert "CSV verified" in page
    csv_path = next(audit_folder.glob("*2026-11-02*.csv"))
    csv_path.write_text(csv_path.read_text(encoding="utf-8") + "forged,row\r\n", encoding="utf-8")
    page = client.get("/", params={"run_id": "scheduled__2026-11-02"}).text
    assert "SHA-256 does not match the manifest" in page
    unknown = client.get("/", params={"run_id": "manual__nothing", "dag_id": "some_other_dag"}).text
    assert "No audit file for this run" in unknown
    assert "cleanup and restore DAGs only" in unknown


def test_hostile_values_are_escaped(tmp_path):
    folder = tmp_path / "audit"
    _run(folder, "manual__<script>alert(1)</script>", "2026-11-04", "live", _seats(3, 2))
    app = create_app(folder)
    app.dependency_overrides[authorize] = lambda: None
    page = TestClient(app).get("/").text
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page


def test_damaged_manifest_is_shown_not_hidden(client, audit_folder):
    (audit_folder / "atlassian-user-audit_2026-11-05_x.manifest.json").write_text(
        "{not json", encoding="utf-8"
    )
    page = client.get("/").text
    assert "atlassian-user-audit_2026-11-05_x.manifest.json: unreadable manifest" in page
    listing = client.get("/api/runs").json()
    assert any("error" in entry for entry in listing["cleanup"])


def _good_manifest(folder: Path) -> tuple[Path, dict]:
    path = next(p for p in folder.glob("*.manifest.json") if "2026-11-03" in p.name)
    return path, json.loads(path.read_text(encoding="utf-8"))


def _set(data: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data[key]
    if value is _DELETE:
        del data[leaf]
    else:
        data[leaf] = value


_DELETE = object()

#: (what is damaged, the value it gets, a word the damaged row's message must contain)
DAMAGED_MANIFESTS = [
    ("sha256", None, "sha256"),
    ("sha256", 12345, "sha256"),
    ("sha256", _DELETE, "sha256"),
    ("rows", "12", "rows"),
    ("rows", -1, "rows"),
    ("rows", True, "rows"),
    ("rows", None, "rows"),
    ("run_id", None, "run_id"),
    ("run_id", ["a"], "run_id"),
    ("as_of", 20261103, "as_of"),
    ("mode", _DELETE, "mode"),
    ("csv_file", "../../etc/passwd", "csv_file"),
    ("csv_file", None, "csv_file"),
    ("summary", "not a dict", "summary"),
    ("summary", [1, 2], "summary"),
    ("summary.seats", "many", "summary.seats"),
    ("summary.seats.total_before", "ninety", "total_before"),
    ("summary.seats.total_after", None, "total_after"),
    ("summary.seats.total_reclaimed", {"n": 3}, "total_reclaimed"),
    ("summary.seats.estimated_saving_per_month", "43 USD", "estimated_saving_per_month"),
    ("summary.seats.estimated_saving_per_month", None, "priced"),
    ("summary.by_action", {"suspend": "three"}, "summary.by_action"),
    ("summary.by_action", "suspend", "summary.by_action"),
    ("summary.results", [1], "summary.results"),
    ("summary.writes", "7", "summary.writes"),
    ("policy_sha256", 7, "policy_sha256"),
    ("columns", "a,b", "columns"),
    ("triggered_by", ["alice"], "triggered_by"),
    ("run_type", 3, "run_type"),
    ("overrides", "mode=live", "overrides"),
    ("overrides", ["mode"], "overrides"),
    ("approval", "approved", "approval"),
    ("approval", {"required": True, "summary": {"by": "bob"}}, "approval.summary"),
    ("policy", [1], "policy"),
]


@pytest.mark.parametrize(("field", "value", "named"), DAMAGED_MANIFESTS)
def test_a_manifest_with_a_missing_or_wrongly_typed_field_is_a_damaged_row(
    client, audit_folder, field, value, named
):
    path, data = _good_manifest(audit_folder)
    _set(data, field, value)
    path.write_text(json.dumps(data), encoding="utf-8")

    response = client.get("/")
    assert response.status_code == 200
    damaged = f"{path.name}: unreadable manifest ("
    assert damaged in response.text
    row = response.text.split(damaged, 1)[1].split("</td>", 1)[0]
    assert named in row
    # The other runs are still listed, with their figures.
    assert "scheduled__2026-11-02" in response.text
    assert "manual__dry" in response.text
    listing = client.get("/api/runs")
    assert listing.status_code == 200
    assert [e["manifest_file"] for e in listing.json()["cleanup"] if "error" in e] == [path.name]
    # Opening the damaged run answers too, and says there is no usable audit for it.
    assert client.get("/", params={"run_id": "scheduled__2026-11-03"}).status_code == 200


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"null", b"[]", b'"text"', b"42", b"\xff\xfe garbage", b'{"csv_file": 1}'],
    ids=["invalid-json", "empty", "null", "list", "string", "number", "not-utf8", "wrong-type"],
)
def test_a_manifest_that_is_not_a_manifest_object_is_a_damaged_row(client, audit_folder, content):
    path = audit_folder / "atlassian-user-audit_2026-11-05_x.manifest.json"
    path.write_bytes(content)
    response = client.get("/")
    assert response.status_code == 200
    assert f"{path.name}: unreadable manifest" in response.text
    assert client.get("/api/runs").status_code == 200


def test_a_manifest_with_unknown_extra_fields_is_still_listed_and_verified(client, audit_folder):
    path, data = _good_manifest(audit_folder)
    data["extra_field_from_a_newer_writer"] = "ignored"
    path.write_text(json.dumps(data), encoding="utf-8")
    # Unknown fields are fine: the run is listed and verified.
    page = client.get("/", params={"run_id": "scheduled__2026-11-03"}).text
    assert "CSV verified" in page


def test_restore_audits_are_listed_and_served_from_their_own_folder(client, audit_folder):
    restore = audit_folder / "restore"
    manifest = write_audit(
        [{"account_id": "a"}], restore, run_id="scheduled__r1", as_of="2026-11-03", mode="live"
    )
    page = client.get("/").text
    assert 'id="restore-runs"' in page
    assert "scheduled__r1" in page
    assert client.get(f"/files/restore/{manifest.csv_file}").content == Path(manifest.csv_path).read_bytes()
    # A restore file is not reachable through the cleanup folder's route, and vice versa.
    assert client.get(f"/files/{manifest.csv_file}").status_code == 404


def test_chart_prefers_live_runs_and_marks_projections():
    manifests = [
        {"mode": "live", "as_of": "2026-11-03", "run_id": "b", "summary": {"seats": _seats(95, 92)}},
        {
            "mode": "dry_run",
            "as_of": "2026-11-02",
            "run_id": "d",
            "summary": {"seats": _seats(95, 10, projected=True)},
        },
        {"mode": "live", "as_of": "2026-11-01", "run_id": "a", "summary": {"seats": _seats(100, 95)}},
    ]
    points, projected = seat_series(manifests)
    assert projected is False
    assert [(p["as_of"], p["before"], p["after"]) for p in points] == [
        ("2026-11-01", 100, 95),
        ("2026-11-03", 95, 92),
    ]
    svg = seats_chart_svg(points, projected=projected)
    assert svg.count("<circle") == 4
    assert 'data-series="before"' in svg
    assert 'data-series="after"' in svg
    assert COLOUR_BEFORE in svg
    assert COLOUR_AFTER in svg
    dry_points, dry_projected = seat_series([manifests[1]])
    assert dry_projected is True
    assert "projected" in seats_chart_svg(dry_points, projected=True)
    assert totals(manifests)["reclaimed"] == 8
    assert "No run with seat figures yet" in seats_chart_svg([], projected=False)


def test_plugin_registers_the_app_in_the_nav_and_on_dag_runs():
    spec = importlib.util.spec_from_file_location(
        "atlassian_audit_plugin", REPO / "plugins" / "atlassian_audit_plugin.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.AtlassianAuditPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/atlassian-audit"
    destinations = {view["destination"]: view for view in plugin.external_views}
    assert destinations["nav"]["url_route"] == "atlassian-audit"
    assert "{RUN_ID}" in destinations["dag_run"]["href"]
    # The app carries the auth dependency itself: Airflow does not protect plugin apps.
    assert any(dep.dependency is authorize for dep in plugin.fastapi_apps[0]["app"].router.dependencies)


def test_default_folder_comes_from_the_deployment_setting(tmp_path, monkeypatch):
    folder = tmp_path / "configured"
    _run(folder, "scheduled__x", "2026-11-06", "live", _seats(5, 4))
    monkeypatch.setenv("ATLASSIAN_CLEANUP_AUDIT_DIR", os.fspath(folder))
    app = create_app()
    app.dependency_overrides[authorize] = lambda: None
    runs = TestClient(app).get("/api/runs").json()
    assert [m["run_id"] for m in runs["cleanup"]] == ["scheduled__x"]
    assert json.loads(json.dumps(runs))["cleanup"][0]["csv_present"] is True


def _chart_points(count: int, *, reclaimed: int = 3) -> list[dict]:
    start = date(2026, 1, 1)
    return [
        {
            "as_of": (start + timedelta(days=i)).isoformat(),
            "run_id": f"scheduled__{i}",
            "before": 300 - i,
            "after": 300 - i - reclaimed,
            "reclaimed": reclaimed,
        }
        for i in range(count)
    ]


def _x_of_labels(svg: str) -> list[float]:
    return [
        float(x)
        for x in re.findall(
            r'<text x="([0-9.]+)" y="[0-9.]+" text-anchor="middle" '
            r'font-size="11" fill="#6b778c">\d{4}-\d{2}-\d{2}<',
            svg,
        )
    ]


def test_chart_with_one_run_labels_its_figures_instead_of_a_lone_dot():
    svg = seats_chart_svg(_chart_points(1, reclaimed=12), projected=False)
    assert "<polyline" not in svg  # a one-point line is a dot
    assert re.search(r'data-label="before">300 seats before<', svg)
    assert re.search(r'data-label="after">288 seats after<', svg)
    assert "One run so far" in svg
    assert len(_x_of_labels(svg)) == 1


def test_chart_without_reclaimed_seats_has_no_stray_scale():
    svg = seats_chart_svg(_chart_points(1, reclaimed=0), projected=False)
    assert "No seats reclaimed yet" in svg
    # The reclaimed panel's only axis label would have been a lone "1".
    assert not re.search(r'text-anchor="end" font-size="11" fill="#6b778c">1<', svg)


@pytest.mark.parametrize("count", [2, 11, 12, 13, 19, 37, 100, 105, 365])
def test_chart_date_labels_never_overlap(count):
    svg = seats_chart_svg(_chart_points(count), projected=False)
    xs = _x_of_labels(svg)
    assert 2 <= len(xs) <= count
    # An ISO date at font-size 11 is about 60 units wide in the 960-unit-wide chart.
    assert all(b - a >= 62 for a, b in itertools.pairwise(xs)), xs
    assert svg.count("<polyline") == 2


def test_chart_with_many_runs_keeps_lines_and_hover_targets_but_no_marker_clutter():
    svg = seats_chart_svg(_chart_points(100), projected=False)
    markers = re.findall(r"<circle [^>]*>", svg)
    assert len(markers) == 200  # a tooltip target per run and series
    assert all('fill-opacity="0"' in marker for marker in markers)
    few = seats_chart_svg(_chart_points(5), projected=False)
    assert not [m for m in re.findall(r"<circle [^>]*>", few) if "fill-opacity" in m]


def test_a_run_shows_who_triggered_it_its_overrides_and_the_approval(tmp_path: Path):
    folder = tmp_path / "who"
    write_audit(
        [{"account_id": "a", "proposed_action": "suspend"}],
        folder,
        run_id="manual__capped",
        as_of="2026-11-26",
        mode="live",
        policy={"dry_run": False},
        run={
            "triggered_by": "alice<script>",
            "run_type": "manual",
            "overrides": {"mode": "live", "max_actions_per_run": 200},
            "policy_file": "/opt/airflow/include/policy.yaml",
            "approval": {
                "required": True,
                "decision": "approved",
                "by": "bob",
                "at": "2026-11-26T09:12:03Z",
                "summary": "approved by bob at 2026-11-26T09:12:03Z",
            },
        },
    )
    write_audit(
        [{"account_id": "b"}],
        folder,
        run_id="scheduled__2026-11-27",
        as_of="2026-11-27",
        mode="dry_run",
        run={"triggered_by": "scheduler", "run_type": "scheduled", "overrides": {}, "approval": None},
    )
    app = create_app(folder)
    app.dependency_overrides[authorize] = lambda: None
    client = TestClient(app)

    listing = client.get("/").text
    assert "alice&lt;script&gt;" in listing
    assert "<script>" not in listing
    assert "approved by bob at 2026-11-26T09:12:03Z" in listing
    assert "scheduler" in listing

    one = client.get("/", params={"run_id": "manual__capped"}).text
    assert 'id="triggered-by">alice&lt;script&gt; (manual run)' in one
    assert "<code>mode=&#34;live&#34;</code>" in one or '<code>mode="live"</code>' in one
    assert "<code>max_actions_per_run=200</code>" in one
    assert 'id="approval">approved by bob at 2026-11-26T09:12:03Z' in one
    scheduled = client.get("/", params={"run_id": "scheduled__2026-11-27"}).text
    assert 'id="triggered-by">scheduler (scheduled run)' in scheduled
    assert 'id="overrides">none (the policy file as it was)' in scheduled
    assert 'id="approval"' not in scheduled
