"""The bench's dry runs: ``airflow dags test`` of the daily DAG, each task's peak RSS, the bytes the
run left in object storage and in the metadata DB; and the full run at 1,000,000 users.

Per-task peak RSS. ``airflow dags test`` runs every task in its own process, one after the other
(``dag.test()`` without an executor). The bench reads that process's log as it is written: on
``[DAG TEST] starting task_id=X`` it resets the kernel's peak-RSS mark of the process (``5`` written
to ``/proc/PID/clear_refs``, Linux 4.0+), and on ``[DAG TEST] end task task_id=X`` it reads the
mark back (``VmHWM`` in ``/proc/PID/status``). The figure therefore covers everything the task
does, XCom pulls and pushes included, on top of what the process already held when the task
started (Airflow itself, and memory earlier tasks freed but the allocator kept): an upper bound of
what the same task needs in a worker's fresh task process. The RSS each task started from is
recorded too: peak minus start is what the task itself added.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from tools.airflow_env import REPO, airflow_env, connection_env
from tools.bench_measure import AS_OF, DAG_ID, SandboxProcess, proc_peak_rss_mb, say

#: The org size the ``*_1m`` figures and their targets are for.
FULL_RUN_1M = 1_000_000
#: A dry run that has not finished after this long is stopped (and reported as failed).
DAGS_TEST_TIMEOUT_S = 3600
#: The lines ``dag.test()`` logs around each task (airflow/sdk/definitions/dag.py, ``_run_task``).
TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")


def machine_load() -> str:
    """The 1, 5 and 15-minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


class TaskMemory:
    """Peak RSS per task of one ``airflow dags test`` process, from its log lines (module doc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[str, float] = {}
        self.start_rss: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.method = "clear_refs"
        self._task: str | None = None
        self._started = 0.0

    def _reset(self) -> None:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            # Without the reset the mark is the process's peak so far: still an upper bound.
            self.method = "process peak (clear_refs not writable)"

    def line(self, text: str) -> None:
        match = TASK_LINE.search(text)
        if match is None:
            return
        event, task_id = match.groups()
        if event == "starting":
            self._reset()
            self._task, self._started = task_id, time.perf_counter()
            # Right after the reset the mark is the RSS the task starts from.
            start = proc_peak_rss_mb(self.pid)
            if start is not None:
                self.start_rss.setdefault(task_id, start)
        elif task_id == self._task:
            self.finish()

    def finish(self) -> None:
        """Record the running task's peak (also called when the process ends mid-task)."""
        if self._task is None:
            return
        peak = proc_peak_rss_mb(self.pid)
        if peak is not None:
            self.peaks[self._task] = max(peak, self.peaks.get(self._task, 0.0))
        self.seconds[self._task] = round(
            self.seconds.get(self._task, 0.0) + time.perf_counter() - self._started, 1
        )
        self._task = None

    def largest(self) -> tuple[str, float] | None:
        if not self.peaks:
            return None
        task_id = max(self.peaks, key=lambda key: self.peaks[key])
        return task_id, self.peaks[task_id]


def _follow(stream: IO[str], log: IO[str], memory: TaskMemory) -> None:
    for text in stream:
        log.write(text)
        memory.line(text)


def dry_run(
    sandbox: SandboxProcess, users: int, seed: int, workdir: Path, *, reseed: bool = True
) -> dict[str, Any]:
    """``airflow dags test`` of the daily DAG, zero latency, no rate limit; ``reseed`` first seeds a
    fresh org of ``users`` (a sandbox started at that size can skip it)."""
    sandbox.configure(latency_ms=0.0, rate_limit_enabled=False)
    info = sandbox.reset(users=users, seed=seed, as_of=AS_OF.date().isoformat()) if reseed else sandbox.info()
    home, audit, xcom = workdir / "airflow", workdir / "audit", workdir / "xcom"
    for path in (home, audit, xcom):
        path.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)]),
        **airflow_env(home, audit_dir=audit, xcom_dir=xcom),
        **connection_env(info, None),
        "ATLASSIAN_CLEANUP_POLICY": str(REPO / "include" / "policy.yaml"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # the run's log is kept, and its task lines read
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=REPO, capture_output=True, text=True
    )
    if migrate.returncode:
        raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
    say(f"dry run: airflow dags test {DAG_ID} over {users} users (zero latency; load {machine_load()}) ...")
    load_before = machine_load()
    log_path = workdir / "dags-test.log"
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, AS_OF.date().isoformat()],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        memory = TaskMemory(proc.pid)
        assert proc.stdout is not None
        reader = threading.Thread(target=_follow, args=(proc.stdout, log, memory), daemon=True)
        reader.start()
        try:
            returncode = proc.wait(timeout=DAGS_TEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            memory.finish()
            proc.kill()
            returncode = proc.wait()
        reader.join()
        memory.finish()  # a task that never logged its end (the process died in it)
    seconds = time.perf_counter() - started
    xcoms = []
    with sqlite3.connect(home / "airflow.db") as db:
        states = [row[0] for row in db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,))]
        succeeded = returncode == 0 and states == ["success"]
        for task_id, key, size in db.execute(
            "SELECT task_id, key, length(CAST(value AS BLOB)) FROM xcom WHERE dag_id = ?", (DAG_ID,)
        ):
            xcoms.append({"task_id": task_id, "key": key, "bytes": int(size or 0)})
        runs = len(states)
    spilled = sum(path.stat().st_size for path in xcom.rglob("*") if path.is_file())
    largest = memory.largest()
    return {
        "seconds": round(seconds, 1),
        "succeeded": succeeded,
        "log": str(log_path),
        "runs": runs,
        "xcom_db_bytes": sum(row["bytes"] for row in xcoms),
        "xcoms": xcoms,
        "xcom_object_storage_bytes": spilled,
        "task_peak_rss_mb": memory.peaks,
        "task_start_rss_mb": memory.start_rss,
        "task_seconds": memory.seconds,
        "task_rss_method": memory.method,
        "largest_task": largest[0] if largest else None,
        "largest_task_peak_rss_mb": largest[1] if largest else None,
        "load_before": load_before,
        "load_after": machine_load(),
    }


def measure_full_run(args: argparse.Namespace, workdir: Path, figures: dict[str, Any]) -> None:
    """The whole daily DAG in dry run over ``args.full_run_users`` users, in a sandbox of its own
    started at that size (zero latency, no rate limit: the figures are the pipeline's own)."""
    users = args.full_run_users
    knobs = {
        "users": users,
        "seed": args.seed,
        "as_of": AS_OF.date().isoformat(),
        "latency_ms": 0.0,
        "rate_limit_enabled": False,
    }
    say(f"full run: starting a {users:,}-user sandbox (load {machine_load()}) ...")
    full_dir = workdir / "full-run"
    full_dir.mkdir(parents=True, exist_ok=True)
    with SandboxProcess(full_dir, knobs) as sandbox:
        seeded_rss = sandbox.peak_rss_mb()
        dry = dry_run(sandbox, users, args.seed, full_dir / "dry-run", reseed=False)
        sandbox_rss = sandbox.peak_rss_mb()
    is_1m = users == FULL_RUN_1M
    ok = dry["succeeded"]
    figures.update(
        full_run_users=users,
        full_run_seconds=dry["seconds"],
        full_run_succeeded=ok,
        full_run_load_before=dry["load_before"],
        full_run_load_after=dry["load_after"],
        full_run_task_peak_rss_mb=dry["task_peak_rss_mb"],
        full_run_task_start_rss_mb=dry["task_start_rss_mb"],
        full_run_task_seconds=dry["task_seconds"],
        full_run_task_rss_method=dry["task_rss_method"],
        full_run_largest_task=dry["largest_task"],
        full_run_object_storage_bytes=dry["xcom_object_storage_bytes"],
        full_run_xcom_db_bytes=dry["xcom_db_bytes"] if dry["runs"] == 1 else None,
        full_run_xcoms=dry["xcoms"],
        full_run_sandbox_seed_seconds=round(sandbox.startup_seconds, 1),
        full_run_sandbox_seeded_rss_mb=seeded_rss,
        full_run_sandbox_peak_rss_mb=sandbox_rss,
        # The figures the 1M targets are judged on: only at that size, and a failed run's time or
        # memory is no result (its RSS is still in full_run_task_peak_rss_mb).
        dry_run_1m_seconds=dry["seconds"] if is_1m and ok else None,
        task_peak_rss_mb_1m=dry["largest_task_peak_rss_mb"] if is_1m and ok else None,
        plan_bytes_1m=dry["xcom_object_storage_bytes"] if is_1m and ok else None,
        xcom_db_bytes_1m=dry["xcom_db_bytes"] if is_1m and ok and dry["runs"] == 1 else None,
    )
    if not ok:
        tail = Path(dry["log"]).read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        say("the full run did not succeed; the end of its log:\n" + "\n".join(tail))
