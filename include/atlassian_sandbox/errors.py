"""Error envelopes: each API family's own error shape, and how a state error maps onto it.

Admin answers JSON:API ``errors``, Jira ``errorMessages``, JSM ``errorMessage`` with an i18n key,
user management a list of ``{code, message}``; a client that parses one family's errors must see
exactly that family's shape from the sandbox.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.responses import JSONResponse

from atlassian_sandbox.model import SandboxError


class ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def J(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=headers)


# ------------------------------------------------------------------------------- error envelopes
def admin_body(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {
        "errors": [
            {"id": str(uuid.uuid4()), "status": str(status), "code": code, "title": title, "detail": detail}
        ]
    }


def admin_error(status: int, code: str, title: str, detail: str) -> ApiError:
    return ApiError(status, admin_body(status, code, title, detail))


def jira_body(*messages: str, errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"errorMessages": list(messages), "errors": errors or {}}


def jira_error(status: int, *messages: str, errors: dict[str, str] | None = None) -> ApiError:
    return ApiError(status, jira_body(*messages, errors=errors))


def jsm_body(message: str, key: str = "sd.error") -> dict[str, Any]:
    return {"errorMessage": message, "i18nErrorMessage": {"i18nKey": key, "parameters": []}}


def jsm_error(status: int, message: str, key: str = "sd.error") -> ApiError:
    return ApiError(status, jsm_body(message, key))


def lifecycle_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, [{"code": code, "message": message, "link": None}])


def error_body(family: str, status: int, message: str, code: str | None = None) -> Any:
    """Generic body per family for statuses without a more specific code (404 route, 5xx, 429)."""
    if family in ("admin", "usermgmt"):
        default = {
            400: "ADMIN-400-24",
            401: "ADMIN-401-1",
            403: "ADMIN-403-3",
            404: "ADMIN-404-1",
            405: "ADMIN-405-1",
            429: "ADMIN-429-1",
            500: "ADMIN-500-1",
            503: "ADMIN-503-1",
        }
        title = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(
            status, message
        )
        return admin_body(status, code or default.get(status, f"ADMIN-{status}-1"), title, message)
    if family == "jsm":
        return jsm_body(message)
    return jira_body(message)


SANDBOX_ERROR_MAP: dict[str, dict[str, tuple[int, str]]] = {
    "admin": {
        "not_found": (404, "ADMIN-404-8"),
        "group_not_found": (404, "ADMIN-404-10"),
        "synced": (403, "ADMIN-403-5"),
        "seats": (409, "ADMIN-409-3"),
        "bad_request": (400, "ADMIN-400-24"),
        "conflict": (409, "ADMIN-409-28"),
        "default_group": (403, "ADMIN-403-6"),
        "admin_group": (403, "ADMIN-403-7"),
        "not_empty": (409, "ADMIN-409-5"),
        "forbidden": (403, "ADMIN-403-3"),
    },
    "jira": {
        "not_found": (404, ""),
        "group_not_found": (404, ""),
        "synced": (403, ""),
        "seats": (400, ""),
        "bad_request": (400, ""),
        "conflict": (400, ""),
    },
}


def from_sandbox_error(family: str, exc: SandboxError) -> ApiError:
    if family == "usermgmt":
        if exc.kind == "forbidden":
            return ApiError(403, {"key": "forbidden.action", "context": {"reason": {"key": exc.message}}})
        if exc.kind == "not_found":
            return lifecycle_error(404, "user.not.found", exc.message)
        return lifecycle_error(400, "lifecycle.invalid.state", exc.message)
    if family == "jsm":
        return jsm_error(404 if exc.kind == "not_found" else 400, exc.message)
    if family == "jira":
        status, _ = SANDBOX_ERROR_MAP["jira"].get(exc.kind, (400, ""))
        return jira_error(status, exc.message)
    status, code = SANDBOX_ERROR_MAP["admin"].get(exc.kind, (400, "ADMIN-400-24"))
    return admin_error(status, code, exc.kind.replace("_", " ").capitalize(), exc.message)
