"""User management (§4.5): an account's privileges, its profile, and its lifecycle actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import views
from atlassian_sandbox.errors import J, lifecycle_error
from atlassian_sandbox.incoming import json_body, qlist
from atlassian_sandbox.model import SandboxError, User
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.state import OrgState

PRIVILEGES = (
    "profile",
    "profile.write",
    "profile.read",
    "email.set",
    "lifecycle.enablement",
    "lifecycle.delete",
    "apiToken.read",
    "apiToken.delete",
)


def privileges_for(state: OrgState, user: User) -> dict[str, Any]:
    reason = state.lifecycle_block_reason(user)
    out: dict[str, Any] = {}
    for name in PRIVILEGES:
        if name.startswith("apiToken"):
            # Only the account holder can see or revoke their own tokens.
            out[name] = {"allowed": False, "reason": {"key": "myselfOnly"}}
        elif reason is None or (reason == "externalDirectory.scim" and name in ("profile", "profile.read")):
            out[name] = {"allowed": True}
        else:
            out[name] = {"allowed": False, "reason": {"key": reason}}
    return out


def add_user_management_routes(usermgmt: APIRouter, rt: Runtime) -> None:
    def st() -> OrgState:
        return rt.state

    @usermgmt.get("/users/{account_id}/manage")
    async def um_manage(account_id: str, request: Request) -> Response:
        with st().lock:
            state = st()
            user = state.visible(state.user(account_id))
            privileges = privileges_for(state, user)
            wanted = [p for raw in qlist(request, "privileges") for p in raw.split(",") if p]
            if wanted:
                privileges = {k: v for k, v in privileges.items() if k in wanted}
            return J(privileges)

    @usermgmt.get("/users/{account_id}/manage/profile")
    async def um_profile(account_id: str) -> Response:
        with st().lock:
            state = st()
            user = state.visible(state.user(account_id))
            reason = state.lifecycle_block_reason(user)
            if reason == "accountNotManaged":
                raise SandboxError("forbidden", reason)
            return J(views.profile(user))

    @usermgmt.post("/users/{account_id}/manage/lifecycle/{action}")
    async def um_lifecycle(account_id: str, action: str, request: Request) -> Response:
        actions: dict[str, Callable[[str], User]] = {
            "disable": st().disable,
            "enable": st().enable,
            "delete": st().delete,
            "cancel-delete": st().cancel_delete,
        }
        if action not in actions:
            raise lifecycle_error(404, "not.found", f"Unknown lifecycle action {action}")
        await json_body(request, "usermgmt")  # optional {"message": ...} for disable; must be JSON
        with st().lock:
            actions[action](account_id)
            if action == "delete" and rt.config.lifecycle_delete_success_code == 200:
                return J({"message": "Success"})
            return Response(status_code=204)
