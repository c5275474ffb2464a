"""A local Atlassian Cloud sandbox: Admin, user-management, Jira and JSM APIs over HTTP.

Wire-faithful to the contract in ``atlassian-api.md`` so the cleanup DAGs' hooks can run against
it unchanged. Start it in-process with :class:`SandboxServer` or as
``python -m atlassian_sandbox --port 0 --users 300 --seed 42``.
"""

from __future__ import annotations

from atlassian_sandbox.app import create_app
from atlassian_sandbox.config import SandboxConfig
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.seed import generate_org
from atlassian_sandbox.server import SandboxServer
from atlassian_sandbox.state import OrgState

__all__ = ["OrgState", "Runtime", "SandboxConfig", "SandboxServer", "create_app", "generate_org"]
