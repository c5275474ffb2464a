"""CLI: ``python -m atlassian_sandbox --host 127.0.0.1 --port 0 --users 300 --seed 42``."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import date
from pathlib import Path

import uvicorn

from atlassian_sandbox.app import create_app
from atlassian_sandbox.config import SandboxConfig
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.server import bind_socket, uvicorn_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="atlassian_sandbox", description="Local Atlassian Cloud API sandbox"
    )
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None, help="0 picks a free port")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="the seed data's 'today'")
    parser.add_argument("--config", type=Path, default=None, help="JSON file of SandboxConfig knobs")
    parser.add_argument("--url-file", type=Path, default=None, help="write the base URL here once listening")
    parser.add_argument("--log-level", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SandboxConfig.from_file(args.config) if args.config else SandboxConfig()
    overrides = {
        "host": args.host,
        "port": args.port,
        "users": args.users,
        "seed": args.seed,
        "as_of": args.as_of,
        "log_level": args.log_level,
    }
    config.update({k: v for k, v in overrides.items() if v is not None}, allow_seed=True)
    runtime = Runtime(config)
    sock = bind_socket(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    runtime.base_url = url
    # uvicorn installs SIGINT/SIGTERM handlers in the main thread and exits gracefully on them.
    server = uvicorn.Server(uvicorn_config(create_app(runtime), config))
    print(
        f"Atlassian sandbox listening on {url} "
        f"(org {runtime.state.org_id}, {len(runtime.state.users)} users)",
        flush=True,
    )
    if args.url_file:
        tmp = args.url_file.with_suffix(args.url_file.suffix + ".tmp")
        tmp.write_text(url + "\n", encoding="utf-8")
        tmp.replace(args.url_file)  # atomic: a waiting script never reads a half-written URL
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal against the
    # handlers it found; no-op handlers make that re-raise harmless, so the exit status is 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
