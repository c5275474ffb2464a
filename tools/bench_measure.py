"""What every ``make bench`` stage shares: the run's fixed figures, RSS readings, progress notes,
the sandbox in its own process, and the stage timer that records a row of the table."""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.airflow_env import REPO

sys.path[:0] = [str(REPO / "plugins"), str(REPO / "include")]

AS_OF = datetime(2026, 11, 26, tzinfo=UTC)
SANDBOX_START_TIMEOUT_S = 900
DAG_ID = "atlassian_user_cleanup"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_peak_rss_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of another live process, from /proc (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def api_user_email() -> str:
    """The API user of the sandbox's site connection (compute_inactivity protects the connection login)."""
    # Imported here: include/ is on sys.path only once this module has run.
    from atlassian_sandbox.config import SandboxConfig

    return SandboxConfig.site_email


def say(message: str) -> None:
    """A progress note on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the sandbox as a separate process ---------------------------------------------------------------


class SandboxProcess:
    """``python -m atlassian_sandbox`` in a child process, with a tiny client for ``/_sim``."""

    def __init__(self, workdir: Path, knobs: dict[str, Any]) -> None:
        self.workdir = workdir
        self.knobs = knobs
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.startup_seconds = 0.0
        self._session: Any = None

    def __enter__(self) -> SandboxProcess:
        import requests

        config = self.workdir / "knobs.json"
        config.write_text(json.dumps(self.knobs), encoding="utf-8")
        url_file = self.workdir / "sandbox.url"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")]),
        }
        started = time.perf_counter()
        self._log = (self.workdir / "sandbox.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "atlassian_sandbox",
                "--port",
                "0",
                "--url-file",
                str(url_file),
                "--config",
                str(config),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        while not url_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sandbox exited with {self.proc.returncode}; see {self.workdir / 'sandbox.log'}"
                )
            if time.perf_counter() - started > SANDBOX_START_TIMEOUT_S:
                raise RuntimeError("sandbox did not start in time")
            time.sleep(0.1)
        self.url = url_file.read_text(encoding="utf-8").strip()
        self._session = requests.Session()
        self._session.get(f"{self.url}/_sim/health", timeout=30).raise_for_status()
        self.startup_seconds = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._session.post(f"{self.url}{path}", json=body, timeout=600)
        response.raise_for_status()
        return dict(response.json())

    def info(self) -> dict[str, Any]:
        response = self._session.get(f"{self.url}/_sim/info", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def configure(self, **knobs: Any) -> None:
        self._post("/_sim/config", knobs)

    def reset(self, **seed: Any) -> dict[str, Any]:
        return self._post("/_sim/reset", seed)

    def last_seq(self) -> int:
        response = self._session.get(f"{self.url}/_sim/calls", params={"since": 2**62}, timeout=60)
        response.raise_for_status()
        return int(response.json()["last_seq"])

    def calls_since(self, seq: int) -> list[dict[str, Any]]:
        response = self._session.get(f"{self.url}/_sim/calls", params={"since": seq}, timeout=120)
        response.raise_for_status()
        return list(response.json()["calls"])

    def peak_rss_mb(self) -> float | None:
        return proc_peak_rss_mb(self.proc.pid) if self.proc else None


# -- the stage timer ---------------------------------------------------------------------------------


def stage(
    name: str,
    count: int,
    func: Callable[[], Any],
    results: list[dict[str, Any]],
    sandbox: SandboxProcess | None = None,
) -> Any:
    # Peak RSS only grows, so its increase during a stage is the memory that stage needed beyond
    # what earlier stages already used (tracemalloc would slow pandas code several-fold).
    say(f"{name} ...")
    gc.collect()
    seq = sandbox.last_seq() if sandbox else None
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    value = func()
    elapsed = time.perf_counter() - started
    row: dict[str, Any] = {
        "stage": name,
        "users": count,
        "api_calls": None,
        "api_429": None,
        "seconds": round(elapsed, 3),
        "users_per_second": round(count / elapsed) if elapsed else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_growth_mb": round(peak_rss_mb() - rss_before, 1),
    }
    if sandbox is not None and seq is not None:
        calls = sandbox.calls_since(seq)
        row["api_calls"] = len(calls)
        row["api_429"] = sum(1 for call in calls if call.get("status") == 429)
        row["_calls"] = calls
    results.append(row)
    return value


def is_call(call: dict[str, Any], method: str, suffix: str) -> bool:
    return call.get("method") == method and str(call.get("path_template") or call.get("path")).endswith(
        suffix
    )


def call_time(call: dict[str, Any]) -> float:
    return datetime.strptime(call["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
