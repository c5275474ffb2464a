"""Run real Airflow components (api-server, scheduler, dag-processor, triggerer, Celery worker) as
separate OS processes, the way docker-compose runs them, for end-to-end tests and ``make airflow``.

    env = {**airflow_env(home, audit_dir=a, xcom_dir=x), **simple_auth_env(home, {"admin": ("pw", "admin")})}
    stack = AirflowStack(env, home, components=("api-server", "scheduler", "dag-processor"))
    stack.cli("db", "migrate")
    with stack:                                  # starts every component and waits until each is healthy
        api = stack.client("admin", "pw")        # REST client with a JWT from POST /auth/token
        api.get("/api/v2/dags")
    # every component (and its children) is stopped here, even after a failure

What the stack adds to the caller's ``env`` (and why):

* free ports for the api-server (unless ``port`` is given), the scheduler's health server and the
  log servers, and the URLs derived from the api-server port: ``[api] base_url`` and
  ``[core] execution_api_server_url``. Changing the api port without both breaks task execution
  (workers keep calling ``localhost:8080/execution/``), see the conventions doc §0.8;
* one JWT secret, API secret key and Fernet key shared by every component: each process would
  otherwise generate its own, and tokens signed by the scheduler or the api-server would be
  rejected by the others (unless the caller already set them);
* a hermetic environment: ``AIRFLOW*``, ``_AIRFLOW*`` and ``ATLASSIAN_CLEANUP_*`` variables of the
  calling process are dropped (a pytest process carries its own SQLite AIRFLOW_HOME), so the
  components see exactly what the caller passed. ``AIRFLOW__CORE__UNIT_TEST_MODE`` is refused:
  it loads Airflow's own test configuration (examples on, its test dags folder).

Each component runs in its own process group (session), is stopped with SIGTERM to the group
leader (graceful: the scheduler and the Celery worker finish their loops), and then anything left
in its group is killed, so no orphaned task or pool process survives. Their output goes to
``<log_dir>/<component>.log``; :meth:`AirflowStack.logs_tail` collects the ends for failure messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

#: The components this module knows how to start, in compose's service naming.
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")

#: SimpleAuthManager's class path: the 3.x default, and the only auth manager installed here (the
#: FAB one that docker-compose configures ships in the Airflow image, not in this venv).
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

# Parent-process variables that would leak another Airflow configuration into the components.
_PRIVATE_ENV_PREFIXES = ("AIRFLOW", "_AIRFLOW", "ATLASSIAN_CLEANUP_")


class AirflowStackError(RuntimeError):
    """A component did not start, died, or an ``airflow`` command failed (message has the logs)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (good enough on a test machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def simple_auth_env(home: Path, users: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """Known SimpleAuthManager users: ``{"admin": ("password", "admin")}`` (role: viewer|user|op|admin).

    Writes the passwords file into ``home`` (SimpleAuthManager only generates passwords for users
    missing from it, so nothing random is printed or needed) and returns the variables that point
    ``[core] simple_auth_manager_users`` / ``simple_auth_manager_passwords_file`` at it.
    """
    home.mkdir(parents=True, exist_ok=True)
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps({name: pw for name, (pw, _) in users.items()}), encoding="utf-8")
    passwords_file.chmod(0o600)
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role}" for name, (_, role) in users.items()
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class ApiClient:
    """A ``requests`` session for the REST API with a bearer token; methods return parsed JSON."""

    def __init__(self, base_url: str, token: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The raw response (no status check), for callers that expect errors."""
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.base_url}{path}", **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowStackError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._json("GET", path, params=params or None)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._json("POST", path, json=body)

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._json("PATCH", path, json=body)

    def close(self) -> None:
        self.session.close()


class AirflowStack:
    """Airflow components as separate processes sharing one AIRFLOW_HOME and one environment.

    :param env: Airflow settings for every component (metadata DB, executor, connections, ...).
        Combined with the calling process's environment minus its Airflow variables.
    :param home: the shared AIRFLOW_HOME (created if missing). Task logs land in ``home/logs``.
    :param components: any of :data:`COMPONENTS`; ``worker`` is ``airflow celery worker`` and needs
        ``AIRFLOW__CELERY__BROKER_URL`` (and the CeleryExecutor) in ``env``.
    :param port: the api-server port; a free one is picked when ``None``.
    :param host: the address the api-server listens on (``0.0.0.0`` for every interface).
    :param public_url: ``[api] base_url``, the URL people open; default :attr:`base_url`.
    :param log_dir: where ``<component>.log`` files go (default ``home/stack-logs``).
    :param worker_concurrency: Celery worker slots (small: every slot is a forked process).
    :param startup_timeout: seconds :meth:`wait_ready` waits for every component to be healthy.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        home: Path,
        components: Sequence[str] = ("api-server",),
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        public_url: str | None = None,
        log_dir: Path | None = None,
        worker_concurrency: int = 2,
        startup_timeout: float = 180,
    ) -> None:
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; choose from {COMPONENTS}")
        if "AIRFLOW__CORE__UNIT_TEST_MODE" in env:
            raise ValueError("do not set AIRFLOW__CORE__UNIT_TEST_MODE: it loads Airflow's own test config")
        self.home = Path(home).resolve()
        self.components = tuple(components)
        self.host = host
        # Where this machine reaches the servers (a wildcard bind address is not a destination).
        self.connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self.port = port or free_port(self.connect_host)
        self.health_port = free_port(self.connect_host)
        self.log_dir = Path(log_dir) if log_dir else self.home / "stack-logs"
        self.worker_concurrency = worker_concurrency
        self.startup_timeout = startup_timeout
        # A unique Celery node name: a second worker on the same broker (another test run) must
        # neither collide with this one nor answer its health ping.
        self.worker_name = f"acu-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        #: The REST API and UI as this process reaches them.
        self.base_url = f"http://{self.connect_host}:{self.port}"
        #: ``[api] base_url``: the address people open (login redirects, links in e-mails and
        #: approval requests). Its host decides which host the login cookie belongs to.
        self.public_url = (public_url or self.base_url).rstrip("/")
        self.env = self._build_env(env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._cli_runs = 0

    # --- environment ---------------------------------------------------------------------------------

    def _build_env(self, env: Mapping[str, str]) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
        shared_secrets = {
            # 64 bytes or more: the JWTs are HS512, and PyJWT warns about shorter HMAC keys.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": _new_fernet_key(),
        }
        defaults = {
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        }
        derived = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.public_url,
            # Task processes call the api-server directly, whatever name people use for it.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": self.connect_host,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.health_port),
            # The log servers (Celery worker / LocalExecutor scheduler, triggerer) listen on fixed
            # default ports; two stacks on one machine would fight over them.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(self.connect_host)),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port(self.connect_host)),
        }
        return {**inherited, **defaults, **shared_secrets, **dict(env), **derived}

    @property
    def executor(self) -> str:
        return self.env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")

    # --- one-off commands ----------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow <args>`` with the stack's environment; raise with its output on failure."""
        self._prepare_home()
        self._cli_runs += 1
        log_path = self.log_dir / f"cli-{self._cli_runs:02d}-{'-'.join(args[:2])}.log"
        try:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.home,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AirflowStackError(f"airflow {' '.join(args)} timed out after {timeout:.0f}s") from exc
        output = result.stdout + result.stderr
        log_path.write_text(output, encoding="utf-8")
        if result.returncode != 0:
            tail = "\n".join(output.splitlines()[-40:])
            raise AirflowStackError(f"airflow {' '.join(args)} failed (exit {result.returncode}):\n{tail}")
        return output

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self.home / "airflow.cfg"
        if not config.exists():
            # Without a file every process that starts first would write a default airflow.cfg
            # (with its own random secrets) at the same moment. Settings come from the env only.
            config.write_text(
                "# Every setting comes from AIRFLOW__* environment variables (tools/airflow_stack.py).\n",
                encoding="utf-8",
            )

    # --- lifecycle -----------------------------------------------------------------------------------

    def _command(self, component: str) -> list[str]:
        airflow = [sys.executable, "-m", "airflow"]
        if component == "worker":
            return [
                *airflow,
                "celery",
                "worker",
                "--concurrency",
                str(self.worker_concurrency),
                "--celery-hostname",
                self.worker_name,
                # Mingle/gossip only talk to other workers; skipping them saves seconds at start.
                "--without-mingle",
                "--without-gossip",
            ]
        return [*airflow, component]

    def start(self) -> AirflowStack:
        """Start every component (does not wait; see :meth:`wait_ready`)."""
        self._prepare_home()
        for component in self.components:
            if component in self.processes:
                continue
            with (self.log_dir / f"{component}.log").open("ab") as log:
                # start_new_session: a process group per component, so stop() reaches the children
                # (task supervisors, Celery pool processes, uvicorn) and Ctrl-C in the terminal
                # reaches only the controlling script, which then stops everything in order.
                self.processes[component] = subprocess.Popen(
                    self._command(component),
                    env=self.env,
                    cwd=self.home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until each component answers its health check; raise with the logs if not."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        pending = list(self.components)
        while pending:
            self.check_alive()
            pending = [component for component in pending if not self._healthy(component)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AirflowStackError(
                    f"not healthy after {self.startup_timeout:.0f}s: {', '.join(pending)}\n{self.logs_tail()}"
                )
            time.sleep(1)

    def check_alive(self) -> None:
        """Raise (with the logs) if any started component has exited."""
        dead = {name: proc.returncode for name, proc in self.processes.items() if proc.poll() is not None}
        if dead:
            died = ", ".join(f"{name} (exit {code})" for name, code in dead.items())
            raise AirflowStackError(f"Airflow component exited: {died}\n{self.logs_tail()}")

    def _healthy(self, component: str) -> bool:
        try:
            if component == "api-server":
                return requests.get(f"{self.base_url}/api/v2/version", timeout=5).status_code == 200
            if component == "scheduler":
                url = f"http://{self.connect_host}:{self.health_port}/health"
                return requests.get(url, timeout=5).status_code == 200
            if component == "worker":
                return self._worker_answers_ping()
            # dag-processor and triggerer have no health server: their job heartbeat is what
            # /api/v2/monitor/health reports (and what `airflow jobs check` reads).
            key = component.replace("-", "_")
            if "api-server" in self.components:
                health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
                return (health.get(key) or {}).get("status") == "healthy"
            job_type = {"dag_processor": "DagProcessorJob", "triggerer": "TriggererJob"}[key]
            self.cli("jobs", "check", "--job-type", job_type, "--local", timeout=60)
            return True
        except (requests.RequestException, ValueError, AirflowStackError):
            return False

    def _worker_answers_ping(self) -> bool:
        # What compose's health check does (`celery inspect ping`), without a 5 s CLI start:
        # a bare Celery app on the same broker pings this worker's node name.
        from celery import Celery

        app = Celery(broker=self.env["AIRFLOW__CELERY__BROKER_URL"])
        try:
            return bool(app.control.ping(destination=[self.worker_name], timeout=1.0))
        finally:
            app.close()

    def stop(self, timeout: float = 30) -> None:
        """Stop every component: SIGTERM to each leader, wait, then kill whatever is left in its group."""
        for proc in self.processes.values():
            _signal_group_leader(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes.values():
            _kill_group(proc)
        self.processes.clear()

    def __enter__(self) -> AirflowStack:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A second, impatient Ctrl-C must not interrupt the shutdown and leave processes behind.
        with _sigint_ignored():
            self.stop()

    # --- REST API ------------------------------------------------------------------------------------

    def token(self, username: str, password: str) -> str:
        """A JWT for the REST API from SimpleAuthManager's ``POST /auth/token``."""
        response = requests.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        if response.status_code >= 400:
            raise AirflowStackError(f"POST /auth/token -> {response.status_code}: {response.text[:500]}")
        return str(response.json()["access_token"])

    def client(self, username: str, password: str) -> ApiClient:
        """An :class:`ApiClient` logged in as ``username``."""
        return ApiClient(self.base_url, self.token(username, password))

    # --- diagnostics ---------------------------------------------------------------------------------

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def logs_tail(self, lines: int = 40, components: Iterable[str] | None = None, task_logs: int = 3) -> str:
        """The last ``lines`` of each component's log and of the newest ``task_logs`` task logs.

        For failure messages: a task's own error is only in its task log, not in any component's.
        """
        parts = []
        for component in components or self.components:
            path = self.log_path(component)
            parts.append(_tail_section(f"{component} ({path})", path, lines))
        newest = sorted((self.home / "logs").glob("dag_id=*/**/*.log"), key=lambda path: path.stat().st_mtime)
        for task_log in newest[-task_logs:] if task_logs else []:
            parts.append(_tail_section(f"task log {task_log.relative_to(self.home)}", task_log, lines))
        return "\n".join(parts)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _tail_section(title: str, path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        text = f"(unreadable: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"----- {title}, last {lines} lines -----\n{tail}"


def _signal_group_leader(proc: subprocess.Popen[bytes], signum: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM then SIGKILL whatever still runs in the process group ``proc`` leads."""
    pgid = proc.pid  # start_new_session=True: the leader's pid is the group id
    # After SIGKILL, wait briefly too: the kill is asynchronous, and a caller that drops a database
    # or reuses a port right after stop() must not race the dying processes.
    for signum, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            break  # the group is empty
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_exists(pgid):
            proc.poll()  # reap the leader, or its zombie keeps the group "existing"
            time.sleep(0.1)
    if proc.poll() is None:
        proc.wait(timeout=10)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
