"""Fixtures for the Atlassian sandbox tests: an in-process app behind FastAPI's TestClient."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from atlassian_sandbox import Runtime, SandboxConfig, create_app
from atlassian_sandbox.state import OrgState, User

AS_OF = date(2026, 11, 26)


class Api:
    """A TestClient plus the org's ids and both credential headers."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.client = TestClient(create_app(runtime))
        self.admin = {"Authorization": f"Bearer {runtime.config.admin_api_key}"}
        token = base64.b64encode(f"{runtime.config.site_email}:{runtime.config.site_token}".encode()).decode()
        self.site = {"Authorization": f"Basic {token}"}

    @property
    def state(self) -> OrgState:
        return self.rt.state

    @property
    def org(self) -> str:
        return self.state.org_id

    @property
    def dir(self) -> str:
        return self.state.directory_id

    def v2(self, suffix: str = "") -> str:
        return f"/admin/v2/orgs/{self.org}/directories/{self.dir}{suffix}"

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self._auth(path), **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self._auth(path), **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers=self._auth(path), **kw)

    def _auth(self, path: str) -> dict[str, str]:
        return self.site if path.startswith("/rest/") else self.admin

    def search_all(self, body: dict[str, Any] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        request = {**(body or {}), "limit": limit}
        while True:
            page = self.post(self.v2("/users/search"), json=request)
            assert page.status_code == 200, page.text
            users.extend(page.json()["data"])
            nxt = page.json()["links"].get("next")
            if not nxt:
                return users
            request = {"cursor": nxt, "limit": limit, "expand": request.get("expand", [])}

    def population(self, name: str, **where: Any) -> list[User]:
        """Users whose primary population is ``name`` (and whose attributes match ``where``)."""
        out = []
        for account_id in self.state.user_order:
            user = self.state.users.get(account_id)
            if user is None or user.populations[0] != name:
                continue
            if all(getattr(user, k) == v for k, v in where.items()):
                out.append(user)
        return out

    def group_id(self, name: str) -> str:
        return self.state.group_by_name(name).id


@pytest.fixture
def make_api() -> Iterator[Any]:
    def factory(**config: Any) -> Api:
        values = {"users": 120, "seed": 7, "as_of": AS_OF, **config}
        return Api(Runtime(SandboxConfig(**values)))

    return factory


@pytest.fixture
def api(make_api: Any) -> Api:
    return make_api()
