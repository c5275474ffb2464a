"""The auditors' page: every run's audit CSV and manifest, and billable seats over time.

A FastAPI app that the ``atlassian_audit`` Airflow plugin mounts at ``/atlassian-audit`` in the
api-server, listed in the UI's navigation and on each DAG run. Auditors and finance get the files
and the figures without shell access; nothing here writes anything.

Safety rules (each has a test):

* Airflow does *not* protect plugin apps: the app declares :data:`authorize` as a dependency, so
  a request without a valid Airflow session cookie or Bearer token gets 401, and one whose user may
  not read the cleanup DAG's runs gets 403.
* Only files the audit writer produces can be downloaded, by plain name, from the audit folder
  (:func:`atlassian_cleanup.reports.audit.resolve_audit_file`); any other name answers 404.
* Everything is served by the package (no CDN: the api-server may be offline); the chart is an
  inline SVG drawn here, the page's CSS is served by the app, and the Content-Security-Policy
  allows nothing else.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from atlassian_cleanup.outcomes import MODE_LIVE
from atlassian_cleanup.reports.audit import read_manifests, resolve_audit_file, verify_audit
from atlassian_cleanup.reports.review_page import add_review_routes
from atlassian_cleanup.settings import CLEANUP_DAG_ID, RESTORE_DAG_ID, audit_dir, restore_audit_dir

#: Mount point in the api-server (also the UI's iframe route, see the plugin module).
URL_PREFIX = "/atlassian-audit"

#: Reading the audit page means reading what the cleanup DAG's runs did: the same permission as
#: viewing those runs in the UI (SimpleAuthManager: viewer and up). Module level so tests can
#: override it with ``app.dependency_overrides[authorize]``.
authorize = requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN, param_dag_id=CLEANUP_DAG_ID)

_PAGE_DIR = Path(__file__).with_name("page")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: Runs listed per table; the chart uses every run.
MAX_TABLE_ROWS = 400

# Chart colours (also what the browser test looks for in its screenshot).
COLOUR_BEFORE = "#0052cc"
COLOUR_AFTER = "#36b37e"
COLOUR_RECLAIMED = "#ff8b00"


# --------------------------------------------------------------------------------------------------
# Figures (pure: manifests in, numbers out)
# --------------------------------------------------------------------------------------------------


def seat_series(manifests: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The chart's points, oldest first, and whether they are projections.

    Live runs are what happened; when there is no live run yet, dry runs are charted instead and
    the chart says "projected". Dry runs never mix into a live chart: a projection next to real
    figures would overstate what was reclaimed.
    """
    with_seats = [m for m in manifests if isinstance((m.get("summary") or {}).get("seats"), Mapping)]
    live = [m for m in with_seats if m.get("mode") == MODE_LIVE]
    chosen, projected = (live, False) if live else (with_seats, True)
    points = []
    for manifest in reversed(chosen):  # manifests come newest first
        seats = manifest["summary"]["seats"]
        points.append(
            {
                "as_of": str(manifest.get("as_of") or ""),
                "run_id": str(manifest.get("run_id") or ""),
                "before": int(seats.get("total_before") or 0),
                "after": int(seats.get("total_after") or 0),
                "reclaimed": int(seats.get("total_reclaimed") or 0),
            }
        )
    return points, projected


def totals(manifests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Headline figures over the live runs: seats reclaimed, seats now, estimated saving."""
    live = [m for m in manifests if m.get("mode") == MODE_LIVE and (m.get("summary") or {}).get("seats")]
    seats = [m["summary"]["seats"] for m in live]
    priced = [s for s in seats if s.get("priced")]
    latest = seats[0] if seats else None
    return {
        "runs": len(manifests),
        "live_runs": len(live),
        "reclaimed": sum(int(s.get("total_reclaimed") or 0) for s in seats),
        "seats_now": int(latest["total_after"]) if latest else None,
        "currency": latest.get("currency") if latest else None,
        "billing": latest.get("billing") if latest else None,
        "saving_realised": latest.get("saving_realised") if latest else None,
        "saving_per_month": round(sum(float(s["estimated_saving_per_month"]) for s in priced), 2)
        if priced
        else None,
        "saving_per_year": round(sum(float(s["estimated_saving_per_year"]) for s in priced), 2)
        if priced
        else None,
    }


def _nice_ceiling(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


#: Room an ISO date needs on the chart's x axis at font-size 11, with a gap (viewBox units).
_DATE_LABEL_WIDTH = 72


def seats_chart_svg(points: Sequence[Mapping[str, Any]], *, projected: bool) -> str:
    """Billable seats before/after each run (lines) and seats reclaimed per run (bars), as SVG.

    Drawn with presentation attributes only (no ``style``), so the page's strict CSP holds.
    Every point has a ``<title>`` tooltip with its exact figures.
    """
    width, top_height, bar_height = 960, 170, 70
    left, right, top = 64, 40, 28
    height = top + top_height + 40 + bar_height + 46
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="seats-chart-title" id="seats-chart">',
        '<title id="seats-chart-title">Billable seats before and after each run'
        f"{' (projected from dry runs)' if projected else ''}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if not points:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#6b778c" '
            'font-size="15">No run with seat figures yet: run the cleanup DAG once.</text></svg>'
        )
        return "".join(parts)

    plot_width = width - left - right
    count = len(points)

    # Points sit inside the plot with half a slot of margin, so the first and last bars fit.
    slot = plot_width / count

    def x_of(index: int) -> float:
        return left + slot * (index + 0.5)

    y_max = _nice_ceiling(max(max(p["before"], p["after"]) for p in points))

    def y_of(value: float) -> float:
        return top + top_height - value * top_height / y_max

    # Seats panel: grid, axis labels, two lines with markers.
    for tick in range(5):
        value = y_max * tick / 4
        y = y_of(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#dfe1e6"/>')
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b778c">'
            f"{value:g}</text>"
        )
    parts.append(
        f'<text x="{left}" y="16" font-size="13" font-weight="600" fill="#172b4d">Billable seats'
        f"{' (projected: dry runs only)' if projected else ''}</text>"
    )
    # Markers shrink as runs accumulate and become hover targets only past 60 runs, where the
    # lines alone read better; a single run is labelled with its figures instead of a lone dot.
    radius = 4.5 if count <= 30 else 3.0 if count <= 60 else 4.0
    marker_opacity = "" if count <= 60 else ' fill-opacity="0"'
    for key, colour, label, dash in (
        ("before", COLOUR_BEFORE, "before the run", ""),
        ("after", COLOUR_AFTER, "after the run", ' stroke-dasharray="6 4"' if projected else ""),
    ):
        if count > 1:
            coords = " ".join(f"{x_of(i):.1f},{y_of(p[key]):.1f}" for i, p in enumerate(points))
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="3"{dash} '
                f'data-series="{key}"/>'
            )
        for i, p in enumerate(points):
            parts.append(
                f'<circle cx="{x_of(i):.1f}" cy="{y_of(p[key]):.1f}" r="{radius}" fill="{colour}"'
                f'{marker_opacity} data-series="{key}">'
                f"<title>{esc(p['as_of'])} {esc(p['run_id'])}: {p[key]} seats {label}</title></circle>"
            )
    if count == 1:
        only = points[0]
        below = only["after"] <= only["before"]
        for key, colour, label, dy in (
            ("before", COLOUR_BEFORE, "before", -10 if below else 16),
            ("after", COLOUR_AFTER, "after", 16 if below else -10),
        ):
            parts.append(
                f'<text x="{x_of(0) + 12:.1f}" y="{y_of(only[key]) + dy:.1f}" font-size="12" '
                f'fill="{colour}" data-label="{key}">{only[key]} seats {label}</text>'
            )
        parts.append(
            f'<text x="{width - right}" y="16" text-anchor="end" font-size="12" fill="#6b778c">'
            "One run so far: the lines start with the second run.</text>"
        )
    legend_y = top + top_height + 22
    for offset, colour, label in (
        (0, COLOUR_BEFORE, "Seats before the run"),
        (190, COLOUR_AFTER, "Seats after the run"),
        (370, COLOUR_RECLAIMED, "Seats reclaimed by the run"),
    ):
        parts.append(
            f'<rect x="{left + offset}" y="{legend_y - 10}" width="14" height="10" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{left + offset + 20}" y="{legend_y}" font-size="12" fill="#172b4d">{label}</text>'
        )

    # Reclaimed panel: its own scale, so a few seats freed out of thousands are still visible.
    bar_top = legend_y + 18
    most_reclaimed = max(p["reclaimed"] for p in points)
    r_max = _nice_ceiling(most_reclaimed)
    parts.append(
        f'<line x1="{left}" y1="{bar_top + bar_height}" x2="{width - right}" '
        f'y2="{bar_top + bar_height}" stroke="#c1c7d0"/>'
    )
    if most_reclaimed:
        parts.append(
            f'<text x="{left - 8}" y="{bar_top + 10}" text-anchor="end" font-size="11" fill="#6b778c">'
            f"{r_max}</text>"
        )
    else:
        # A scale for nothing would be a stray "1": say it in words.
        parts.append(
            f'<text x="{left + plot_width / 2:.1f}" y="{bar_top + bar_height / 2 + 4:.1f}" '
            'text-anchor="middle" font-size="12" fill="#6b778c">No seats reclaimed yet</text>'
        )
    bar_width = max(3.0, min(36.0, slot * 0.6))
    for i, p in enumerate(points):
        h = p["reclaimed"] * bar_height / r_max
        parts.append(
            f'<rect x="{x_of(i) - bar_width / 2:.1f}" y="{bar_top + bar_height - h:.1f}" '
            f'width="{bar_width:.1f}" height="{h:.1f}" fill="{COLOUR_RECLAIMED}">'
            f"<title>{esc(p['as_of'])} {esc(p['run_id'])}: {p['reclaimed']} seats reclaimed</title></rect>"
        )
        if p["reclaimed"] and count <= 40:
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{bar_top + bar_height - h - 4:.1f}" text-anchor="middle" '
                f'font-size="11" fill="#172b4d">{p["reclaimed"]}</text>'
            )
    # Date labels, thinned so they never overlap.
    every = max(1, math.ceil(_DATE_LABEL_WIDTH / slot))
    for i, p in enumerate(points):
        # The newest run is always labelled; a thinned label too close to it is dropped.
        if (i % every == 0 and count - 1 - i >= every) or i == count - 1:
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{bar_top + bar_height + 18}" text-anchor="middle" '
                f'font-size="11" fill="#6b778c">{esc(p["as_of"])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def verify_manifest_file(directory: Path, manifest: Mapping[str, Any]) -> str:
    """``verified`` when the CSV still matches its manifest (SHA-256 and rows), else what is wrong."""
    path = resolve_audit_file(directory, str(manifest.get("csv_file") or ""))
    if path is None:
        return "CSV file missing"
    try:
        verify_audit(path)
    except ValueError as exc:  # a mismatch, or a manifest damaged since the listing was read
        return str(exc)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return "verified"


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(_PAGE_DIR)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _root(request: Request) -> str:
    # The app is mounted under the api-server's base path; absolute links built from root_path
    # work both at /atlassian-audit and inside the UI's iframe, with or without a trailing slash.
    return str(request.scope.get("root_path") or "").rstrip("/")


def create_app(
    directory: str | Path | None = None,
    restore_directory: str | Path | None = None,
    state_url: str | None = None,
) -> FastAPI:
    """The audit page app. The folders default to the deployment's (``ATLASSIAN_CLEANUP_AUDIT_DIR``).

    Folders are resolved per request when not given, so an api-server started before the first
    run (folder not created yet) still finds the files later. ``state_url`` is the state database
    of the review queue (default: the policy's ``state_store.conn_id``, resolved per request).
    """
    app = FastAPI(
        title="Atlassian user audit",
        dependencies=[Depends(authorize)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    env = _templates()

    def folders() -> tuple[Path, Path]:
        cleanup = Path(directory) if directory else Path(audit_dir())
        restore = Path(restore_directory) if restore_directory else Path(restore_audit_dir(str(cleanup)))
        return cleanup, restore

    def secure(response: Response) -> Response:
        response.headers.update(_SECURITY_HEADERS)
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, run_id: str | None = None, dag_id: str | None = None) -> Response:
        cleanup_dir, restore_dir = folders()
        cleanup = read_manifests(cleanup_dir)
        restore = read_manifests(restore_dir)
        points, projected = seat_series(cleanup)
        selected = None
        if run_id:
            if dag_id == RESTORE_DAG_ID:
                pool, folder, kind = restore, restore_dir, "restore"
            else:
                pool, folder, kind = cleanup, cleanup_dir, "cleanup"
            match = next((m for m in pool if m.get("run_id") == run_id and "error" not in m), None)
            selected = {
                "run_id": run_id,
                "kind": kind,
                "manifest": match,
                "verification": verify_manifest_file(folder, match) if match else None,
            }
        body = env.get_template("audit_page.html").render(
            root=_root(request),
            cleanup=cleanup[:MAX_TABLE_ROWS],
            cleanup_hidden=max(0, len(cleanup) - MAX_TABLE_ROWS),
            restore=restore[:MAX_TABLE_ROWS],
            totals=totals(cleanup),
            chart=seats_chart_svg(points, projected=projected),
            selected=selected,
            dag_id=dag_id,
            our_dags=(CLEANUP_DAG_ID, RESTORE_DAG_ID),
            restore_dag_id=RESTORE_DAG_ID,
        )
        return secure(HTMLResponse(body))

    add_review_routes(app, env, _root, secure, state_url)

    @app.get("/static/audit_page.css")
    def stylesheet() -> Response:
        return secure(FileResponse(_PAGE_DIR / "audit_page.css", media_type="text/css"))

    @app.get("/api/runs")
    def runs() -> Response:
        cleanup_dir, restore_dir = folders()
        return secure(
            JSONResponse({"cleanup": read_manifests(cleanup_dir), "restore": read_manifests(restore_dir)})
        )

    def download(folder: Path, name: str) -> Response:
        path = resolve_audit_file(folder, name)
        if path is None:
            raise HTTPException(status_code=404, detail="No such audit file")
        media_type = "text/csv; charset=utf-8" if name.endswith(".csv") else "application/json"
        return secure(FileResponse(path, media_type=media_type, filename=path.name))

    @app.get("/files/{name}")
    def cleanup_file(name: str) -> Response:
        return download(folders()[0], name)

    @app.get("/files/restore/{name}")
    def restore_file(name: str) -> Response:
        return download(folders()[1], name)

    return app
