"""Audit CSV and manifest writer.

The CSV is what auditors download: one row per user and decision, UTF-8, a fixed documented column
order, and text cells neutralised so a spreadsheet never executes a display name such as
``=HYPERLINK(...)`` (CSV/formula injection). A JSON manifest beside it records the row count and
SHA-256 so anyone can prove the file was not edited after the run. Both files are written to a
temporary name and renamed, so a crash never leaves a half-written audit file behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atlassian_cleanup.decisions.records import PLAN_COLUMNS
from atlassian_cleanup.outcomes import (
    NO_ACTION,
    NO_OUTCOME_WORDS,
    NOT_RUN,
    StageOutcome,
)

#: Column order of the audit CSV: the run, then every plan column, then what the run did (the
#: README's "Audit CSV columns" table documents each one).
AUDIT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "logical_date",
    "as_of",
    "mode",
    *PLAN_COLUMNS,
    "result",
    "outcome",
    "api_status",
    "intent_at",
    "result_at",
)

# Spreadsheet programs evaluate cells that start with these characters (OWASP CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class AuditManifest:
    csv_path: str
    csv_file: str
    rows: int
    sha256: str
    run_id: str
    as_of: str
    mode: str
    columns: list[str]
    summary: dict[str, Any]
    #: SHA-256 of the effective policy (file plus the run's overrides), so an auditor can tell
    #: which rules produced this file; None when the writer was not given one.
    policy_sha256: str | None = None
    #: The DAG run's logical date (ISO-8601 UTC); None in manifests written before it was recorded.
    logical_date: str | None = None
    #: Identity of the state store a live run used (a witness that survives the store's loss);
    #: None for dry runs and older manifests.
    state_store_id: str | None = None
    #: The effective policy itself (the one ``policy_sha256`` hashes): the policy the run resolved
    #: at its start and planned, approved and acted under.
    policy: dict[str, Any] | None = None
    #: The policy file the run read at its start.
    policy_file: str | None = None
    #: Who started the run: the Airflow user who triggered it, or ``scheduler`` (:func:`triggered_by`).
    triggered_by: str | None = None
    #: Airflow's run type (``scheduled``, ``manual``, ``backfill``, ...).
    run_type: str | None = None
    #: The run params that changed the policy for this run (param -> value); empty: none.
    overrides: dict[str, Any] | None = None
    #: What ``approve_plan`` decided: ``required``, ``decision`` (``not_needed``, ``stopped``,
    #: ``approved``, ``rejected``), ``by`` (the Airflow user who answered), ``at``, ``summary``.
    approval: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def neutralise_cell(value: Any) -> str:
    """Render one cell as text, prefixing a quote where a spreadsheet would see a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        text = ";".join(str(item) for item in value)
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    else:
        text = str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return text
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def result_of(proposed_action: str | None, outcome: StageOutcome | None) -> str:
    """The ``result`` column for one row, from its proposed action and its stage's outcome."""
    if not proposed_action or proposed_action == "none":
        return NO_ACTION
    if outcome is None:
        return NOT_RUN
    return outcome.result


def audit_rows(
    plan: Iterable[Mapping[str, Any]],
    outcomes: Mapping[str, StageOutcome],
    journal: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterable[dict[str, Any]]:
    """Join plan rows with what the run did: outcome sentence, result, API status and timestamps.

    :param outcomes: account id -> the stage operators' outcome.
    :param journal: account id -> this run's latest journal entry (``api_status``, ``intent_at``,
        ``result_at``); empty for a dry run, which writes no journal.
    """
    journal = journal or {}
    for row in plan:
        account_id = row["account_id"]
        outcome = outcomes.get(account_id)
        entry = journal.get(account_id) or {}
        yield {
            **row,
            "result": result_of(row.get("proposed_action"), outcome),
            "outcome": outcome.sentence if outcome is not None else NO_OUTCOME_WORDS,
            "api_status": entry.get("api_status"),
            "intent_at": entry.get("intent_at"),
            "result_at": entry.get("result_at"),
        }


def triggered_by(run_type: str | None, triggering_user_name: str | None) -> str:
    """Who started a run, in words: the user who triggered it, or ``scheduler`` for a scheduled run.

    A run without a user name that the scheduler did not create (an asset event, a backfill
    started from the CLI) is named by its run type, so "unknown" never hides a scheduled run.
    """
    if triggering_user_name:
        return str(triggering_user_name)
    if not run_type or run_type == "scheduled":
        return "scheduler"
    return f"{run_type} run (no user recorded)"


def policy_fingerprint(policy: Mapping[str, Any]) -> str:
    """SHA-256 of a policy's canonical JSON form (key order and whitespace do not matter)."""
    canonical = json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def audit_file_stem(as_of: str, run_id: str) -> str:
    """File name (without suffix) for one run's audit: sortable by date, unique per run."""
    return f"atlassian-user-audit_{as_of}_{_UNSAFE_NAME.sub('_', run_id).strip('_')}"


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_audit(
    rows: Iterable[Mapping[str, Any]],
    directory: str | os.PathLike[str],
    *,
    run_id: str,
    as_of: str,
    mode: str,
    logical_date: str | None = None,
    summary: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    state_store_id: str | None = None,
    run: Mapping[str, Any] | None = None,
) -> AuditManifest:
    """Write ``<stem>.csv`` and ``<stem>.manifest.json`` into ``directory`` and return the manifest.

    :param rows: plan rows (or any mapping with the :data:`AUDIT_COLUMNS` keys; missing keys are
        written empty). ``run_id``, ``as_of`` and ``mode`` columns are filled from the arguments.
    :param mode: ``dry_run`` or ``live``; stated on every row so a file read out of context cannot
        be mistaken for a record of real changes.
    :param logical_date: the DAG run's logical date (ISO-8601 UTC); ``as_of`` is the date the
        decisions were made for (the end of the data interval).
    :param policy: the run's effective policy: recorded, and hashed into ``policy_sha256``.
    :param run: who and how (``triggered_by``, ``run_type``, ``overrides``, ``approval``,
        ``policy_file``), recorded as given.
    """
    stem = audit_file_stem(as_of, run_id)
    csv_path = Path(directory) / f"{stem}.csv"
    digest = hashlib.sha256()
    count = 0

    class _HashingWriter:
        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def write(self, text: str) -> int:
            digest.update(text.encode("utf-8"))
            return self._handle.write(text)

    def write_csv(handle: Any) -> None:
        nonlocal count
        writer = csv.writer(_HashingWriter(handle), lineterminator="\r\n")
        writer.writerow(AUDIT_COLUMNS)
        fixed = {"run_id": run_id, "logical_date": logical_date, "as_of": as_of, "mode": mode}
        for row in rows:
            values = {**row, **fixed}
            writer.writerow([neutralise_cell(values.get(column)) for column in AUDIT_COLUMNS])
            count += 1

    _atomic_write(csv_path, write_csv)
    manifest = AuditManifest(
        csv_path=str(csv_path),
        csv_file=csv_path.name,
        rows=count,
        sha256=digest.hexdigest(),
        run_id=run_id,
        as_of=as_of,
        mode=mode,
        columns=list(AUDIT_COLUMNS),
        summary=dict(summary or {}),
        policy_sha256=policy_fingerprint(policy) if policy is not None else None,
        logical_date=logical_date,
        state_store_id=state_store_id,
        policy=dict(policy) if policy is not None else None,
        policy_file=(run or {}).get("policy_file"),
        triggered_by=(run or {}).get("triggered_by"),
        run_type=(run or {}).get("run_type"),
        overrides=dict((run or {}).get("overrides") or {}) if run is not None else None,
        approval=dict((run or {}).get("approval") or {}) or None,
    )
    manifest_path = csv_path.with_name(f"{stem}.manifest.json")
    _atomic_write(
        manifest_path, lambda handle: json.dump(manifest.to_dict(), handle, indent=2, sort_keys=True)
    )
    return manifest


def verify_audit(csv_path: str | os.PathLike[str]) -> AuditManifest:
    """Re-hash an audit CSV and compare it with its manifest; raise ``ValueError`` on mismatch
    or when the manifest itself is damaged (see :func:`manifest_problems`)."""
    path = Path(csv_path)
    manifest_path = path.with_name(path.name.removesuffix(".csv") + ".manifest.json")
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems = manifest_problems(data)
    if problems:
        raise ValueError(f"{manifest_path.name}: damaged manifest ({'; '.join(problems)})")
    digest = hashlib.sha256()
    with path.open("rb") as handle:  # in blocks: a 100k-user CSV need not sit in memory
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != data["sha256"]:
        raise ValueError(
            f"{path.name}: SHA-256 does not match the manifest (file {actual}, manifest {data['sha256']})"
        )
    with path.open(encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    if rows != data["rows"]:
        raise ValueError(f"{path.name}: {rows} rows but the manifest says {data['rows']}")
    known = {name for name in AuditManifest.__dataclass_fields__}
    return AuditManifest(**{key: value for key, value in data.items() if key in known})


# What a manifest must hold for the audit page to show it: anything else is a damaged file.
_REQUIRED_TEXT = ("csv_file", "run_id", "as_of", "mode")
_OPTIONAL_TEXT = (
    "csv_path",
    "policy_sha256",
    "logical_date",
    "state_store_id",
    "policy_file",
    "triggered_by",
    "run_type",
)
_OPTIONAL_OBJECTS = ("policy", "overrides", "approval")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUMMARY_COUNTS = ("by_action", "results", "verdicts")
_SEAT_COUNTS = ("total_before", "total_after", "total_reclaimed")
_SEAT_AMOUNTS = ("estimated_saving_per_month", "estimated_saving_per_year")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _is_count(value: Any) -> bool:
    return _is_number(value) and value >= 0 and float(value).is_integer()


def manifest_problems(data: Any) -> list[str]:
    """What is missing or of the wrong type in a parsed manifest; empty when it can be shown.

    A manifest is a small file anyone with access to the audit folder can damage (an editor, a
    half-restored backup, another tool): each field the audit page reads is checked, so one bad
    file becomes one row marked damaged instead of an error page.
    """
    if not isinstance(data, dict):
        return [f"not a JSON object (got {type(data).__name__})"]
    problems = []
    for key in _REQUIRED_TEXT:
        if not isinstance(data.get(key), str) or not data[key]:
            problems.append(f"{key} must be a non-empty text (got {data.get(key)!r})")
    for key in _OPTIONAL_TEXT:
        if data.get(key) is not None and not isinstance(data[key], str):
            problems.append(f"{key} must be a text or null (got {data[key]!r})")
    if isinstance(data.get("csv_file"), str) and not AUDIT_FILE_NAME.match(data["csv_file"]):
        problems.append(f"csv_file is not an audit file name (got {data['csv_file']!r})")
    if not _is_count(data.get("rows")):
        problems.append(f"rows must be a whole number (got {data.get('rows')!r})")
    if not isinstance(data.get("sha256"), str) or not _SHA256.match(data["sha256"]):
        problems.append(f"sha256 must be 64 hexadecimal characters (got {data.get('sha256')!r})")
    for key in _OPTIONAL_OBJECTS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            problems.append(f"{key} must be an object or null (got {data[key]!r})")
    approval = data.get("approval")
    if isinstance(approval, dict) and not isinstance(approval.get("summary", ""), str):
        problems.append(f"approval.summary must be a text (got {approval.get('summary')!r})")
    if data.get("columns") is not None and not isinstance(data["columns"], list):
        problems.append(f"columns must be a list (got {type(data['columns']).__name__})")
    summary = data.get("summary", {})
    if summary is None:
        summary = {}
    if not isinstance(summary, dict):
        return [*problems, f"summary must be an object (got {type(summary).__name__})"]
    for key in _SUMMARY_COUNTS:
        counts = summary.get(key)
        if counts is None:
            continue
        if not isinstance(counts, dict) or not all(_is_count(v) for v in counts.values()):
            problems.append(f"summary.{key} must map names to whole numbers (got {counts!r})")
    if summary.get("writes") is not None and not _is_count(summary["writes"]):
        problems.append(f"summary.writes must be a whole number (got {summary['writes']!r})")
    seats = summary.get("seats")
    if seats is not None:
        if not isinstance(seats, dict):
            problems.append(f"summary.seats must be an object (got {type(seats).__name__})")
        else:
            for key in _SEAT_COUNTS:
                if not _is_count(seats.get(key)):
                    problems.append(f"summary.seats.{key} must be a whole number (got {seats.get(key)!r})")
            for key in _SEAT_AMOUNTS:
                if seats.get(key) is not None and not _is_number(seats[key]):
                    problems.append(f"summary.seats.{key} must be a number or null (got {seats[key]!r})")
                if seats.get("priced") and seats.get(key) is None:
                    problems.append(f"summary.seats.{key} is missing although the run was priced")
    return problems


#: What an audit file name may look like: the writer's own stems, nothing with a path in it.
AUDIT_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,240}\.(csv|manifest\.json)$")


def read_manifests(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run's manifest in ``directory`` (not recursive), newest run first.

    A manifest that cannot be read, or whose fields are missing or of the wrong type
    (:func:`manifest_problems`), is returned as ``{"manifest_file", "error"}`` rather than
    skipped, so a damaged file shows up on the audit page instead of silently disappearing. The
    manifests are small (counts only); nothing here reads the CSVs.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    entries: list[dict[str, Any]] = []
    for path in folder.glob("*.manifest.json"):
        if not AUDIT_FILE_NAME.match(path.name):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            problems = manifest_problems(data)
            if problems:
                raise ValueError("; ".join(problems))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            entries.append({"manifest_file": path.name, "error": str(exc), "_mtime": _mtime(path)})
            continue
        data["manifest_file"] = path.name
        data["csv_present"] = (folder / str(data["csv_file"])).is_file()
        data["_mtime"] = _mtime(path)
        entries.append(data)
    entries.sort(key=lambda e: (str(e.get("as_of") or ""), e["_mtime"]), reverse=True)
    for entry in entries:
        entry.pop("_mtime", None)
    return entries


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed while the folder was being read
        return 0.0


def resolve_audit_file(directory: str | os.PathLike[str], name: str) -> Path | None:
    """The audit file ``name`` inside ``directory``, or None when the name is not one we serve.

    Only plain names of the writer's shape are accepted, and the resolved path (symlinks followed)
    must sit directly in ``directory``: ``../``, absolute paths, encoded separators and links
    pointing elsewhere all come back None.
    """
    if not AUDIT_FILE_NAME.match(name):
        return None
    folder = Path(directory).resolve()
    candidate = (folder / name).resolve()
    if candidate.parent != folder or not candidate.is_file():
        return None
    return candidate
