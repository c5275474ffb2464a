"""Run the sandbox: in-process (``SandboxServer`` context manager) or from the CLI."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from atlassian_sandbox.app import create_app
from atlassian_sandbox.config import SandboxConfig
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.state import OrgState


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts so port 0 resolves to a known free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, config: SandboxConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=config.log_level,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        # h11 keeps the transport reachable from the ASGI send callable, which chaos drops use.
        http="h11",
    )


class SandboxServer:
    """``with SandboxServer(SandboxConfig(users=300)) as sb: requests.get(sb.url + ...)``."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = config or SandboxConfig()
        if overrides:
            self.config.update(overrides, allow_seed=True)
        self.runtime = Runtime(self.config)
        self.app = create_app(self.runtime)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.url = ""

    # --------------------------------------------------------------- lifecycle
    def start(self) -> SandboxServer:
        self._sock = bind_socket(self.config.host, self.config.port)
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.runtime.base_url = self.url
        self._server = uvicorn.Server(uvicorn_config(self.app, self.config))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="atlassian-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("Atlassian sandbox failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- test helpers
    @property
    def state(self) -> OrgState:
        return self.runtime.state

    @property
    def info(self) -> dict[str, Any]:
        return self.runtime.info()

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self.runtime.calls.since(since)

    def clear_calls(self) -> None:
        self.runtime.calls.clear()

    def configure(self, **knobs: Any) -> list[str]:
        return self.runtime.configure(knobs)

    def reset(self, users: int | None = None, seed: int | None = None, as_of: Any = None) -> OrgState:
        return self.runtime.reset(users, seed, as_of)
