"""Reading an incoming request: its credentials, query parameters and JSON body.

Routes parse query strings and bodies by hand instead of declaring typed parameters: FastAPI's
own validation answers 422 in its own envelope, and the whole point of the sandbox is that every
error looks like the Atlassian family it imitates.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Depends, Request

from atlassian_sandbox.errors import ApiError, admin_body, error_body, jira_body, jira_error
from atlassian_sandbox.model import User
from atlassian_sandbox.runtime import Runtime


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def qlist(request: Request, name: str) -> list[str]:
    """Array query params: Atlassian repeats the key; some clients add ``[]``."""
    return request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")


def int_param(value: Any, name: str, default: int, family: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, error_body(family, 400, f"{name} must be an integer")) from None


async def json_body(request: Request, family: str, *, required: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, error_body(family, 400, "A JSON request body is required"))
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, error_body(family, 400, "The request body is not valid JSON")) from None


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def require_bearer(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or token.strip() != _runtime(request).config.admin_api_key:
        raise ApiError(
            401,
            admin_body(401, "ADMIN-401-1", "Unauthorized", "The API key is missing, invalid or expired"),
            {"WWW-Authenticate": 'Bearer realm="api.atlassian.com"'},
        )


def require_basic(request: Request) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    ok = False
    if scheme.lower() == "basic":
        try:
            email, _, token = base64.b64decode(encoded.strip()).decode().partition(":")
            config = _runtime(request).config
            ok = email.lower() == config.site_email.lower() and token == config.site_token
        except (binascii.Error, UnicodeDecodeError, ValueError):
            ok = False
    if not ok:
        raise ApiError(
            401,
            jira_body("Client must be authenticated to access this resource."),
            {"WWW-Authenticate": 'Basic realm="protected-area"'},
        )
    state = _runtime(request).state
    with state.lock:
        caller = state.users.get(state.api_account_id)
    # A deactivated or deleted account cannot authenticate; a suspended one has no site access.
    if caller is None or caller.account_status != "active":
        raise ApiError(
            401,
            jira_body("Client must be authenticated to access this resource."),
            {"WWW-Authenticate": 'Basic realm="protected-area"'},
        )
    if caller.membership != "active":
        raise jira_error(403, "You do not have access to this site.")
    return caller


Caller = Annotated[User, Depends(require_basic)]
