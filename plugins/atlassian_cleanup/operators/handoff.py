"""Columnar hand-offs: the user table and the plan travel between tasks as Parquet files.

The producing task writes one Parquet file under a run-scoped folder of the object storage the
XCom backend uses (``[common.io] xcom_objectstorage_path``) and returns a small reference
(``path``, ``rows``, ``columns``, ``bytes``, ``sha256``): the metadata database holds the reference
only, and each consumer reads only the columns (and, for the stages, the rows) it acts on.

Where no object storage is configured, the files go to ``$AIRFLOW_HOME/atlassian_cleanup_handoff``
(enough for one machine; several workers need the shared object storage). A file that is missing
or whose SHA-256 does not match its reference fails the consuming task: it never acts on an empty
or altered plan. Retention: see :func:`remove_earlier_runs`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context, ObjectStoragePath

    from atlassian_cleanup.decisions.user_table import UserTable

#: Marks a hand-off reference in XCom.
FORMAT = "atlassian_cleanup.handoff/1"
#: Folder (under the object storage root) that holds every run's hand-off files.
FOLDER = "atlassian_cleanup_handoff"
#: Rows per Parquet row group: the unit a row filter can skip without decoding it.
ROW_GROUP_ROWS = 65_536
#: Rows turned into Python dicts at a time when a consumer streams a file.
BATCH_ROWS = 20_000
_META_KEY = b"atlassian_cleanup"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def handoff_root() -> ObjectStoragePath:
    """The object storage root: the XCom backend's path, else a folder under ``$AIRFLOW_HOME``."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.configuration import conf

    configured = conf.get("common.io", "xcom_objectstorage_path", fallback="") or ""
    if configured.strip():
        try:
            return ObjectStoragePath(configured.strip()) / FOLDER
        except (ValueError, ImportError) as exc:  # an unknown protocol, a filesystem not installed
            raise AirflowFailException(
                f"[common.io] xcom_objectstorage_path = {configured.strip()!r} cannot be used for the "
                f"user table and plan files ({exc}); nothing was changed. Fix the setting (e.g. "
                "file:///opt/airflow/xcom or s3://bucket/xcom with its provider installed)."
            ) from exc
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return ObjectStoragePath(f"file://{Path(home).resolve() / FOLDER}")


def _safe(name: str) -> str:
    """A path segment for a DAG or run id; a short hash keeps ids that differ only in symbols apart."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', name).strip('_')[:120]}-{digest}"


def dag_folder(dag_id: str) -> ObjectStoragePath:
    return handoff_root() / _safe(dag_id)


def run_folder(dag_id: str, run_id: str) -> ObjectStoragePath:
    """Where one DAG run's hand-off files live: one folder per run id, never shared."""
    return dag_folder(dag_id) / _safe(run_id)


def prepare_run_folder(context: Context) -> ObjectStoragePath:
    """Create this run's folder; called by the run's first task, so a storage setting that cannot
    be used fails it before any API call rather than after the whole directory was read."""
    folder = run_folder(context["ti"].dag_id, context["run_id"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AirflowFailException(
            f"The folder {folder} for the user table and plan files cannot be created ({exc}); "
            "nothing was called or changed. Check [common.io] xcom_objectstorage_path (or "
            "$AIRFLOW_HOME when it is unset) and the worker's permissions there."
        ) from exc
    return folder


def is_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("format") == FORMAT


def write_table(
    table: pa.Table, context: Context, name: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``table`` as ``<run folder>/<task_id>.<name>.parquet`` and return its reference.

    A retried task writes the same path again (same run, same task): the last attempt's file and
    reference are the ones the next task reads.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, compression="zstd")
    data = sink.getvalue()
    ti = context["ti"]
    path = run_folder(ti.dag_id, context["run_id"]) / f"{ti.task_id}.{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(memoryview(data))
    return {
        "format": FORMAT,
        "kind": name,
        "path": str(path),
        "rows": table.num_rows,
        "columns": list(table.column_names),
        "bytes": data.size,
        "sha256": hashlib.sha256(memoryview(data)).hexdigest(),
        **(extra or {}),
    }


def _load(reference: Mapping[str, Any], what: str) -> Any:
    """The file's bytes as an Arrow buffer, after checking it exists and matches its SHA-256."""
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

    missing = [key for key in ("path", "rows", "sha256") if key not in reference]
    if missing:
        raise AirflowFailException(
            f"The {what} reference lacks {', '.join(missing)}; nothing was changed. Clear the run "
            "from its first task to plan again."
        )
    path = ObjectStoragePath(str(reference["path"]))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AirflowFailException(
            f"The {what} file {reference['path']} is missing (the hand-off folder was cleaned up, "
            "or it was written on another worker's local disk: set [common.io] "
            "xcom_objectstorage_path to storage every worker shares); nothing was changed. Clear "
            "the run from the task that wrote it to produce it again."
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != reference["sha256"]:
        raise AirflowFailException(
            f"The {what} file {reference['path']} does not match its SHA-256 (file {actual}, "
            f"reference {reference['sha256']}): it was changed or replaced after it was written; "
            "nothing was changed. Clear the run from the task that wrote it to produce it again."
        )
    return pa.py_buffer(data)


def read_table(
    reference: Mapping[str, Any],
    what: str,
    *,
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> pa.Table:
    """The referenced table (only ``columns``; only the rows ``filters`` keep), checked first."""
    import pyarrow.parquet as pq

    buffer, _ = _open(reference, what)
    return pq.read_table(buffer, columns=list(columns) if columns else None, filters=filters)


def _open(reference: Mapping[str, Any], what: str) -> tuple[Any, Any]:
    """The checked file's buffer and ``ParquetFile``; its row count must be the reference's."""
    import pyarrow.parquet as pq

    buffer = _load(reference, what)
    parquet = pq.ParquetFile(buffer)
    if parquet.metadata.num_rows != int(reference["rows"]):
        raise AirflowFailException(
            f"The {what} file {reference['path']} holds {parquet.metadata.num_rows} rows, its "
            f"reference says {reference['rows']}; nothing was changed."
        )
    return buffer, parquet


def iter_rows(reference: Mapping[str, Any], what: str, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The referenced table's rows as dicts (``columns`` only), ``BATCH_ROWS`` at a time."""
    _, parquet = _open(reference, what)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
        yield from batch.to_pylist()


def remove_earlier_runs(dag_id: str, run_id: str) -> int:
    """Retention: delete the hand-off folders of the DAG's other runs; keep this run's.

    ``export_audit`` calls this after a successful run wrote its audit (the audit CSV is the
    record; the files are only the way between tasks). The latest successful run's files stay, so
    its tasks can still be cleared and re-run; a failed run's files stay until the next
    successful run. The DAG allows one active run at a time, so no running run loses its files.
    """
    folder = dag_folder(dag_id)
    keep = _safe(run_id)
    if not folder.exists():
        return 0
    removed = 0
    for child in folder.iterdir():
        if child.name != keep:
            child.fs.rm(child.path, recursive=True)
            removed += 1
    return removed


# -- the user table ----------------------------------------------------------------------------------


def users_to_arrow(table: UserTable) -> pa.Table:
    """The user table as one Arrow table: a row per user, flat lists as list columns.

    Plain and evidence columns are strings; dictionary-encoded columns keep their ``int32`` codes
    (the distinct values go in the file's metadata); a flat list (``groups.codes``,
    ``product_access.last``, ...) becomes a list column split by its ``.counts`` column.
    """
    import numpy as np
    import pyarrow as pa

    plain, evidence, values, arrays = table.parts()
    columns: dict[str, Any] = {name: pa.array(column, type=pa.string()) for name, column in plain.items()}
    columns["product_last_active"] = pa.array(evidence, type=pa.string())
    for name, array in arrays.items():
        prefix = name.rsplit(".", 1)[0]
        if name.endswith((".codes", ".last")) and f"{prefix}.counts" in arrays:
            counts = arrays[f"{prefix}.counts"]
            offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int32)
            columns[name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(array))
        else:
            columns[name] = pa.array(array)
    metadata = {_META_KEY: json.dumps({"users": len(table), "values": values}).encode("utf-8")}
    return pa.table(columns, metadata=metadata)


def users_from_arrow(arrow: pa.Table) -> UserTable:
    """The :class:`UserTable` that :func:`users_to_arrow` wrote."""
    import pyarrow as pa

    from atlassian_cleanup.decisions.user_table import PLAIN_FIELDS, UserTable

    meta = json.loads((arrow.schema.metadata or {}).get(_META_KEY, b"{}"))
    if "values" not in meta:
        raise AirflowFailException("The user table file has no dictionary of values; clear the run.")
    arrays = {}
    for name in arrow.column_names:
        if name in PLAIN_FIELDS or name == "product_last_active":
            continue
        column = arrow.column(name).combine_chunks()
        if pa.types.is_list(column.type):
            column = column.flatten()
        arrays[name] = column.to_numpy(zero_copy_only=False).copy()
    return UserTable.from_parts(
        plain={name: arrow.column(name).to_pylist() for name in PLAIN_FIELDS},
        evidence=arrow.column("product_last_active").to_pylist(),
        values=meta["values"],
        arrays=arrays,
    )


def read_users(value: Any) -> UserTable:
    """The user table ``extract_users`` handed over: a reference, or an older run's JSON form."""
    from atlassian_cleanup.decisions.user_table import UserTable

    if is_reference(value):
        return users_from_arrow(read_table(value, "user table"))
    return UserTable.from_any(value)


# -- the plan ---------------------------------------------------------------------------------------


def plan_to_arrow(plan: Any) -> pa.Table:
    """The planner's DataFrame as an Arrow table (nullable integers stay integers)."""
    import pyarrow as pa

    return pa.Table.from_pandas(plan, preserve_index=False)


def plan_rows(value: Any, actions: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The plan rows whose ``proposed_action`` is one of ``actions`` (all when None), as records.

    ``value`` is a reference, or the records list an older run (or a test) handed over.
    """
    from atlassian_cleanup.decisions.records import PLAN_COLUMNS

    wanted = None if actions is None else sorted(set(actions))
    if not is_reference(value):
        return [row for row in value or [] if wanted is None or row.get("proposed_action") in wanted]
    if wanted is not None and not wanted:
        return []
    filters = [("proposed_action", "in", wanted)] if wanted is not None else None
    return read_table(value, "plan", columns=PLAN_COLUMNS, filters=filters).to_pylist()


def iter_plan(value: Any, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every plan row, in plan order, streamed from the file (``columns`` only) or the records."""
    from atlassian_cleanup.decisions.records import PLAN_COLUMNS

    if is_reference(value):
        yield from iter_rows(value, "plan", columns or PLAN_COLUMNS)
        return
    for row in value or []:
        yield row if columns is None else {name: row.get(name) for name in columns}


def plan_frame(value: Any, columns: Sequence[str]) -> Any:
    """Some plan columns as a DataFrame of Python objects (missing cells None, never NaN)."""
    import pandas as pd

    if not is_reference(value):
        return [{name: row.get(name) for name in columns} for row in value or []]
    table = read_table(value, "plan", columns=columns)
    return pd.DataFrame({name: pd.Series(table.column(name).to_pylist(), dtype=object) for name in columns})
