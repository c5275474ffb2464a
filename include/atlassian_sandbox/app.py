"""FastAPI app factory: the Admin, user-management, Jira and JSM routes plus ``/_sim``.

Routes parse query strings and bodies by hand instead of declaring typed parameters: FastAPI's
own validation answers 422 in its own envelope, and the whole point of the sandbox is that every
error looks like the Atlassian family it imitates.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from email.utils import parseaddr
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from atlassian_sandbox import jql, views
from atlassian_sandbox.middleware import SimMiddleware, family_of
from atlassian_sandbox.runtime import BadCursor, Runtime, parse_datetime
from atlassian_sandbox.state import JSM_TRANSITIONS, OrgState, SandboxError, User, iso

V2_STATUSES = {"active", "suspended", "not_invited", "deactivated", "for_deletion"}
ACCOUNT_STATUSES = {"active", "inactive", "closed"}
MEMBERSHIP_STATUSES = {"active", "suspended", "no_membership"}
CLAIM_STATUSES = {"managed", "unmanaged"}
V2_EXPANDS = {"productAccess", "groups", "platformRoles", "counts.resources"}
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


# ------------------------------------------------------------------------------- request helpers
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


def serve_v2_twins(router: APIRouter) -> None:
    """Serve every ``/rest/api/3`` route of ``router`` under ``/rest/api/2`` as well.

    Jira Cloud answers both versions (atlassian-python-api's Jira clients default to v2). Each twin
    is a route of its own, so the call log's ``path_template`` and the rate limiter's bucket key
    name the version that was called, and ``rate_limit_endpoints`` can address either. The handler
    is shared; it learns the version from ``views.JIRA_API_VERSION`` (links, and rich text: ADF
    documents in v3, plain strings in v2). Paths already declared for v2 (the removed
    ``/rest/api/2/search``) keep their own handler.
    """
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    declared = {(r.path, method) for r in routes for method in r.methods}
    for route in routes:
        if not route.path.startswith("/rest/api/3/"):
            continue
        path = "/rest/api/2/" + route.path.removeprefix("/rest/api/3/")
        methods = sorted(m for m in route.methods if (path, m) not in declared)
        if methods:
            router.add_api_route(path, _as_v2(route.endpoint), methods=methods, name=f"{route.name}_v2")


def _as_v2(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through __wrapped__
    async def twin(*args: Any, **kwargs: Any) -> Any:
        token = views.JIRA_API_VERSION.set(2)
        try:
            return await endpoint(*args, **kwargs)
        finally:
            views.JIRA_API_VERSION.reset(token)

    return twin


def create_app(runtime: Runtime) -> SimMiddleware:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="Atlassian sandbox")
    app.state.runtime = runtime
    rt = runtime

    def st() -> OrgState:
        return rt.state

    # ---------------------------------------------------------------- exception handlers
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return J(exc.body, exc.status, exc.headers)

    @app.exception_handler(SandboxError)
    async def _sandbox_error(request: Request, exc: SandboxError) -> Response:
        err = from_sandbox_error(family_of(request.url.path), exc)
        return J(err.body, err.status, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        family = family_of(request.url.path)
        if family == "sim":
            return J({"error": str(exc.detail)}, exc.status_code)
        message = "Not Found" if exc.status_code == 404 else str(exc.detail)
        return J(error_body(family, exc.status_code, message), exc.status_code)

    # ---------------------------------------------------------------- auth
    admin = APIRouter(dependencies=[Depends(require_bearer)])
    usermgmt = APIRouter(dependencies=[Depends(require_bearer)])
    site = APIRouter()

    def check_org(org_id: str) -> OrgState:
        state = st()
        if org_id != state.org_id:
            raise admin_error(
                404, "ADMIN-404-2", "Organization not found", f"Organization {org_id} not found"
            )
        state.process_due_deletions()
        return state

    def check_dir(state: OrgState, directory_id: str, *, write: bool = False) -> None:
        if directory_id == "-":
            if write and not rt.config.allow_dash_directory_writes:
                raise admin_error(
                    400, "ADMIN-400-24", "Bad request", "A concrete directoryId is required for writes"
                )
            return
        if directory_id != state.directory_id:
            raise admin_error(
                404, "ADMIN-404-1", "Directory not found", f"Directory {directory_id} not found"
            )

    # ================================================================ Admin: orgs, directories
    def org_object(state: OrgState, base: str) -> dict[str, Any]:
        org_url = f"{base}/admin/v1/orgs/{state.org_id}"
        return {
            "id": state.org_id,
            "type": "orgs",
            "attributes": {"name": state.org_name},
            "links": {"self": org_url},
            "relationships": {
                "domains": {"related": f"{org_url}/domains"},
                "users": {"related": f"{org_url}/users"},
            },
        }

    @admin.get("/admin/v1/orgs")
    async def list_orgs(request: Request) -> Response:
        with st().lock:
            base = base_url(request)
            return J(
                {"data": [org_object(st(), base)], "links": {"self": f"{base}/admin/v1/orgs"}, "meta": None}
            )

    @admin.get("/admin/v1/orgs/{org_id}")
    async def get_org(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            return J({"data": org_object(state, base_url(request))})

    @admin.get("/admin/v2/orgs/{org_id}/directories")
    async def list_directories(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            return J(
                {
                    "data": [
                        {
                            "directoryId": state.directory_id,
                            "name": state.directory_name,
                            "icon": "https://admin.atlassian.com/assets/directory.svg",
                        }
                    ],
                    "links": {"self": None, "prev": None, "next": None},
                }
            )

    @admin.post("/admin/v2/orgs/{org_id}/workspaces")
    async def list_workspaces(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            base = base_url(request)
            data = [
                {
                    "id": r.ari,
                    "type": "workspaces",
                    "attributes": {
                        "name": state.site,
                        "typeKey": r.key,
                        "hostUrl": r.host_url,
                        "status": "online",
                    },
                    "links": {"self": f"{base}/admin/v2/orgs/{org_id}/workspaces/{r.ari}"},
                }
                for r in state.resources.values()
            ]
            return J(
                {
                    "data": data,
                    "links": {"self": None, "prev": None, "next": None},
                    "meta": {"pageSize": len(data)},
                }
            )

    # ================================================================ Admin v1 users
    @admin.get("/admin/v1/orgs/{org_id}/users")
    async def v1_users(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            base = base_url(request)
            cursor = request.query_params.get("cursor")

            def build(_query: dict[str, Any]) -> list[str]:
                # v1 lists managed accounts only: claimed domain, Atlassian accounts (§3.1).
                return [a for a in state.user_order if (u := state.users.get(a)) is not None and u.managed]

            try:
                ids, self_token, prev_token, next_token = rt.cursors.page(
                    "v1users", cursor, {}, build, rt.config.v1_page_size
                )
            except BadCursor:
                raise admin_error(
                    400, "ADMIN-400-1", "Invalid cursor", "The cursor is invalid or has expired"
                ) from None
            url = f"{base}/admin/v1/orgs/{org_id}/users"
            links: dict[str, str] = {"self": f"{url}?cursor={self_token}" if cursor else url}
            if prev_token:
                links["prev"] = f"{url}?cursor={prev_token}"
            if next_token:
                links["next"] = f"{url}?cursor={next_token}"  # a full URL, unlike v2 (§9.11)
            total = sum(1 for u in state.users.values() if u.managed)
            data = [views.v1_user(state, state.users[a], base) for a in ids if a in state.users]
            return J({"data": data, "meta": {"total": total}, "links": links})

    @admin.get("/admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates")
    async def v1_last_active(org_id: str, account_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            user = state.directory_user(account_id)
            return J(views.last_active_dates(state, user))

    # ================================================================ Admin v2 users
    def v2_query(source: dict[str, Any], family: str = "admin") -> dict[str, Any]:
        query: dict[str, Any] = {}
        for key in ("accountIds", "status", "accountStatus", "membershipStatus", "claimStatus", "groupIds",
                    "emails", "emailDomains", "resourceIds", "directoryIds", "roleIds"):  # fmt: skip
            values = as_list(source.get(key))
            if values:
                query[key] = values
        allowed = {"status": V2_STATUSES, "accountStatus": ACCOUNT_STATUSES,
                   "membershipStatus": MEMBERSHIP_STATUSES, "claimStatus": CLAIM_STATUSES}  # fmt: skip
        for key, valid in allowed.items():
            bad = [v for v in query.get(key, []) if v not in valid]
            if bad:
                raise admin_error(
                    400, "ADMIN-400-24", "Bad request", f"Invalid {key} value(s): {', '.join(bad)}"
                )
        term = source.get("searchTerm")
        if term:
            query["searchTerm"] = str(term)
        if query.get("searchTerm") and query.get("emails"):
            raise admin_error(
                400, "ADMIN-400-24", "Bad request", "searchTerm and emails cannot be used together"
            )
        mfa = source.get("mfaEnabled")
        if mfa is not None and mfa != "":
            query["mfaEnabled"] = str(mfa).lower() in ("true", "1")
        sort = source.get("sortBy")
        if sort:
            entries = sort if isinstance(sort, list) else [sort]
            first = (
                entries[0]
                if isinstance(entries[0], dict)
                else {"field": "nick_name", "direction": str(entries[0])}
            )
            query["sortDesc"] = str(first.get("direction", "asc")).lower() == "desc"
            query["sort"] = True
        return query

    def v2_build(state: OrgState, query: dict[str, Any]) -> list[str]:
        account_ids = set(query.get("accountIds", []))
        status = set(query.get("status", []))
        account_status = set(query.get("accountStatus", []))
        membership = set(query.get("membershipStatus", []))
        claim = set(query.get("claimStatus", []))
        group_ids = set(query.get("groupIds", []))
        emails = {e.lower() for e in query.get("emails", [])}
        domains = {d.lower().lstrip("@") for d in query.get("emailDomains", [])}
        resources = set(query.get("resourceIds", []))
        term = str(query.get("searchTerm", "")).lower()
        mfa = query.get("mfaEnabled")
        apps = rt.config.apps_in_directory_search
        candidates: list[str]
        if account_ids:
            candidates = [a for a in state.user_order if a in account_ids]
        elif group_ids:
            members: set[str] = set()
            for gid in group_ids:
                if gid in state.groups:
                    members |= state.groups[gid].members
            candidates = [a for a in state.user_order if a in members]
        else:
            candidates = state.user_order
        result = []
        for account_id in candidates:
            user = state.users.get(account_id)
            if user is None or user.account_type == "customer":
                continue  # portal-only customers are not directory members
            if user.account_type == "app" and not apps:
                continue
            if user.membership == "none" and not user.managed:
                continue  # removed external users leave the directory entirely (§4.3)
            if status and user.status not in status:
                continue
            if account_status and user.account_status not in account_status:
                continue
            if membership and user.membership_status not in membership:
                continue
            if (
                claim
                and (user.claim_status if user.account_type == "atlassian" else "unmanaged") not in claim
            ):
                continue
            if group_ids and not (user.groups & group_ids):
                continue
            if emails and (user.email or "").lower() not in emails:
                continue
            if domains and (user.email or "").rsplit("@", 1)[-1].lower() not in domains:
                continue
            if resources and not {state.resources[p].ari for p in state.user_products(user)} & resources:
                continue
            if mfa is not None and user.mfa_enabled != mfa:
                continue
            if (
                term
                and term not in user.name.lower()
                and term not in user.nickname
                and term not in (user.email or "").lower()
            ):
                continue
            result.append(account_id)
        if query.get("sort"):
            result.sort(key=lambda a: (state.users[a].nickname, a), reverse=bool(query.get("sortDesc")))
        return result

    def v2_page(
        request: Request,
        state: OrgState,
        query: dict[str, Any],
        cursor: str | None,
        limit_raw: Any,
        expand: set[str],
    ) -> Response:
        limit = int_param(limit_raw, "limit", 50, "admin")
        if limit < 1 or limit > 100:
            raise admin_error(400, "ADMIN-400-24", "Bad request", "limit must be between 1 and 100")
        bad = expand - V2_EXPANDS
        if bad:
            raise admin_error(
                400, "ADMIN-400-24", "Bad request", f"Unsupported expand value(s): {', '.join(sorted(bad))}"
            )
        try:
            ids, self_token, prev_token, next_token = rt.cursors.page(
                "v2users",
                cursor,
                query,
                lambda q: v2_build(state, q)[: rt.config.directory_search_max_users],
                limit,
            )
        except BadCursor:
            raise admin_error(
                400, "ADMIN-400-1", "Invalid cursor", "The cursor is invalid or has expired"
            ) from None
        base = base_url(request)
        data = [
            views.v2_user(state, state.users[a], expand, base, rt.config) for a in ids if a in state.users
        ]
        links: dict[str, Any] = {"self": self_token, "prev": prev_token}
        if next_token or rt.config.v2_last_page_next == "null":
            links["next"] = next_token  # an opaque token to pass back as cursor, not a URL
        return J({"data": data, "links": links})

    @admin.post("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/search")
    async def v2_search(org_id: str, directory_id: str, request: Request) -> Response:
        body = await json_body(request, "admin")
        if not isinstance(body, dict):
            raise admin_error(400, "ADMIN-400-24", "Bad request", "The body must be a JSON object")
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            query = v2_query(body)
            return v2_page(
                request, state, query, body.get("cursor"), body.get("limit"), set(as_list(body.get("expand")))
            )

    def v2_query_params(request: Request) -> dict[str, Any]:
        """The v2 user filters of a GET (list and count): array parameters repeat their key."""
        source: dict[str, Any] = {k: qlist(request, k) for k in (
            "accountIds", "status", "accountStatus", "membershipStatus", "claimStatus", "groupIds",
            "emails", "emailDomains", "resourceIds", "directoryIds", "roleIds")}  # fmt: skip
        source["searchTerm"] = request.query_params.get("searchTerm")
        source["mfaEnabled"] = request.query_params.get("mfaEnabled")
        return v2_query(source)

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users")
    async def v2_list(org_id: str, directory_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            query = v2_query_params(request)
            return v2_page(
                request,
                state,
                query,
                request.query_params.get("cursor"),
                request.query_params.get("limit"),
                set(),
            )

    # The literal segments (count, stats) are registered before users/{account_id}: the first
    # matching route wins, and "count" is no account id.
    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/count")
    async def v2_count_users(org_id: str, directory_id: str, request: Request) -> Response:
        # §3.5: same filters as the list (§3.3); the shape {"count": n} is jira.js's
        # GetDirectoryUsersCount model ([lib]; atlassian-python-api passes the JSON through).
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            return J({"count": len(v2_build(state, v2_query_params(request)))})

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/stats")
    async def v2_user_stats(org_id: str, directory_id: str) -> Response:
        # §3.5 "user stats": jira.js's MultiDirectoryUserStats model ([lib]), the users a
        # directory list returns counted per role id and per account status.
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            roles: dict[str, int] = {}
            statuses = dict.fromkeys(sorted(ACCOUNT_STATUSES), 0)
            for account_id in v2_build(state, {}):
                user = state.visible(state.users[account_id])
                statuses[user.account_status] = statuses.get(user.account_status, 0) + 1
                held = {
                    a["role"] for item in views.role_assignments(state, user) for a in item["roleAssignments"]
                }
                for role in held:
                    roles[role] = roles.get(role, 0) + 1
            return J(
                {
                    "roles": [{"roleId": r, "count": n} for r, n in sorted(roles.items())],
                    "accountStatus": [{"status": s, "count": n} for s, n in statuses.items()],
                }
            )

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}")
    async def v2_get_user(org_id: str, directory_id: str, account_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            user = state.directory_user(account_id)
            if user.membership == "none" and not user.managed:
                raise SandboxError("not_found", f"User {account_id} not found")
            return J({"data": views.v2_user(state, user, set(), base_url(request), rt.config)})

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/role-assignments")
    async def v2_role_assignments(
        org_id: str, directory_id: str, account_id: str, request: Request
    ) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            user = state.visible(state.directory_user(account_id))
            return J(
                {
                    "data": views.role_assignments(state, user),
                    "links": {"self": None, "prev": None, "next": None},
                }
            )

    def write_ok(message: str) -> Response:
        if rt.config.suspend_restore_success_code == 200:
            return J({"message": message})
        return Response(status_code=204)

    @admin.post("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/suspend")
    async def v2_suspend(org_id: str, directory_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            state.suspend(account_id)
            return write_ok(f"Access was suspended for user {account_id} in directory {state.directory_id}")

    @admin.post("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/restore")
    async def v2_restore(org_id: str, directory_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            state.restore(account_id)
            return write_ok(f"Access was restored for user {account_id} in directory {state.directory_id}")

    @admin.delete("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}")
    async def v2_remove(org_id: str, directory_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            state.remove_from_directory(account_id)
            return Response(status_code=204)

    # ================================================================ Admin v2 groups
    def group_page(request: Request, state: OrgState, source: dict[str, Any], counts: bool) -> Response:
        limit = int_param(source.get("limit"), "limit", 50, "admin")
        if limit < 1 or limit > 100:
            raise admin_error(400, "ADMIN-400-24", "Bad request", "limit must be between 1 and 100")
        query = {
            "groupIds": as_list(source.get("groupIds")),
            "groupNames": as_list(source.get("groupNames")),
            "accountIds": as_list(source.get("accountIds")),
            "resourceIds": as_list(source.get("resourceIds")),
            "searchTerm": str(source.get("searchTerm") or ""),
        }

        def build(q: dict[str, Any]) -> list[str]:
            out = []
            for gid in state.group_order:
                group = state.groups.get(gid)
                if group is None:
                    continue
                if q["groupIds"] and gid not in q["groupIds"]:
                    continue
                if q["groupNames"] and group.name not in q["groupNames"]:
                    continue
                if q["accountIds"] and not group.members & set(q["accountIds"]):
                    continue
                if q["resourceIds"] and not {state.resources[p].ari for p, _ in group.roles} & set(
                    q["resourceIds"]
                ):
                    continue
                if q["searchTerm"] and q["searchTerm"].lower() not in group.name.lower():
                    continue
                out.append(gid)
            return out

        try:
            ids, self_token, prev_token, next_token = rt.cursors.page(
                "groups", source.get("cursor"), query, build, limit
            )
        except BadCursor:
            raise admin_error(
                400, "ADMIN-400-1", "Invalid cursor", "The cursor is invalid or has expired"
            ) from None
        base = base_url(request)
        data = [views.admin_group(state, state.groups[g], base, counts) for g in ids if g in state.groups]
        links: dict[str, Any] = {"self": self_token, "prev": prev_token}
        if next_token or rt.config.v2_last_page_next == "null":
            links["next"] = next_token
        return J({"data": data, "links": links})

    groups_path = "/admin/v2/orgs/{org_id}/directories/{directory_id}/groups"

    @admin.get(groups_path)
    async def v2_list_groups(org_id: str, directory_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            source: dict[str, Any] = {k: qlist(request, k) for k in ("groupIds", "accountIds", "resourceIds")}
            for key in ("cursor", "limit", "searchTerm"):
                source[key] = request.query_params.get(key)
            return group_page(request, state, source, counts=True)

    @admin.post(groups_path + "/search")
    async def v2_search_groups(org_id: str, directory_id: str, request: Request) -> Response:
        body = await json_body(request, "admin")
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            expand = set(as_list(body.get("expand")))
            return group_page(
                request, state, body, counts=bool(expand & {"counts.users", "counts.resources"})
            )

    @admin.get(groups_path + "/{group_id}")
    async def v2_get_group(org_id: str, directory_id: str, group_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            return J({"data": views.admin_group(state, state.group(group_id), base_url(request), True)})

    @admin.post(groups_path)
    async def v2_create_group(org_id: str, directory_id: str, request: Request) -> Response:
        body = await json_body(request, "admin", required=True)
        name = str(body.get("name") or "").strip() if isinstance(body, dict) else ""
        if not name:
            raise admin_error(400, "ADMIN-400-24", "Bad request", "name is required")
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            group_id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{state.org_id}/groups/{name}/{len(state.group_order)}")
            )
            group = state.create_group(group_id, name, body.get("description"))
            return J({"data": views.admin_group(state, group, base_url(request), True)}, 201)

    @admin.delete(groups_path + "/{group_id}")
    async def v2_delete_group(org_id: str, directory_id: str, group_id: str) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            state.delete_group(group_id)
            return Response(status_code=204)

    @admin.get(groups_path + "/{group_id}/role-assignments")
    async def v2_group_roles(org_id: str, directory_id: str, group_id: str) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id)
            group = state.group(group_id)
            # One entry per resource with every role the group holds on it (§5.2).
            per_resource: dict[str, list[str]] = {}
            for product, role in group.roles:
                per_resource.setdefault(product, []).append(role)
            data = [
                {"resourceId": state.resources[p].ari, "resourceOwner": p,
                 "roleAssignments": [{"role": r, "roleAssignmentMethods": ["direct"]} for r in roles]}
                for p, roles in per_resource.items()
            ]  # fmt: skip
            return J({"data": data, "links": {"self": None, "prev": None, "next": None}})

    @admin.post(groups_path + "/{group_id}/memberships")
    async def v2_add_member(org_id: str, directory_id: str, group_id: str, request: Request) -> Response:
        body = await json_body(request, "admin", required=True)
        account_id = body.get("accountId") if isinstance(body, dict) else None
        if not account_id:
            raise admin_error(400, "ADMIN-400-24", "Bad request", "accountId is required")
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            group = state.group(group_id)
            if group.external_synced:
                raise admin_error(403, "ADMIN-403-5", "Forbidden", "You can't add a user to a synced group")
            state.add_member(group_id, str(account_id))
            return Response(status_code=204)

    @admin.delete(groups_path + "/{group_id}/memberships/{account_id}")
    async def v2_remove_member(org_id: str, directory_id: str, group_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(org_id)
            check_dir(state, directory_id, write=True)
            group = state.group(group_id)
            if group.external_synced:
                raise admin_error(
                    403, "ADMIN-403-5", "Forbidden", "You can't remove a user from a synced group"
                )
            state.remove_member(group_id, account_id)
            return Response(status_code=204)

    # ================================================================ Admin: removed v1 endpoints
    def gone(detail: str) -> Response:
        return J(admin_body(410, "ADMIN-410-1", "Gone", detail), 410)

    removed_detail = "This endpoint stopped working after 2026-06-30; use the v2 directories API"

    # Removed whatever the method: atlassian-python-api's search_users_in_organization sends GET.
    @admin.api_route("/admin/v1/orgs/{org_id}/users/search", methods=["GET", "POST"])
    async def removed_v1_search(org_id: str) -> Response:
        return gone(removed_detail)

    @admin.post("/admin/v1/orgs/{org_id}/directory/users/{account_id}/suspend-access")
    async def removed_v1_suspend(org_id: str, account_id: str) -> Response:
        return gone(removed_detail)

    @admin.post("/admin/v1/orgs/{org_id}/directory/users/{account_id}/restore-access")
    async def removed_v1_restore(org_id: str, account_id: str) -> Response:
        return gone(removed_detail)

    @admin.delete("/admin/v1/orgs/{org_id}/directory/users/{account_id}")
    async def removed_v1_delete(org_id: str, account_id: str) -> Response:
        return gone(removed_detail)

    @admin.api_route(
        "/admin/v1/orgs/{org_id}/directory/groups{rest:path}", methods=["GET", "POST", "DELETE", "PUT"]
    )
    async def removed_v1_groups(org_id: str, rest: str) -> Response:
        return gone(removed_detail)

    @admin.post("/admin/v1/orgs/{org_id}/groups/search")
    async def removed_v1_group_search(org_id: str) -> Response:
        return gone(removed_detail)

    # ================================================================ User management (§4.5)
    def privileges_for(state: OrgState, user: User) -> dict[str, Any]:
        reason = state.lifecycle_block_reason(user)
        out: dict[str, Any] = {}
        for name in PRIVILEGES:
            if name.startswith("apiToken"):
                # Only the account holder can see or revoke their own tokens.
                out[name] = {"allowed": False, "reason": {"key": "myselfOnly"}}
            elif reason is None or (
                reason == "externalDirectory.scim" and name in ("profile", "profile.read")
            ):
                out[name] = {"allowed": True}
            else:
                out[name] = {"allowed": False, "reason": {"key": reason}}
        return out

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

    # ================================================================ Jira platform (§5.4, §6.1)
    def jira_state() -> OrgState:
        state = st()
        state.process_due_deletions()
        return state

    def jira_user_or_404(state: OrgState, account_id: str | None) -> User:
        if not account_id:
            raise jira_error(400, "The query parameter 'accountId' is required.")
        user = state.users.get(account_id)
        if user is None:
            raise jira_error(404, f"User with accountId '{account_id}' does not exist.")
        return user

    def jira_group_param(state: OrgState, request: Request) -> Any:
        group_id = request.query_params.get("groupId")
        name = request.query_params.get("groupname") or request.query_params.get("groupName")
        if not group_id and not name:
            raise jira_error(400, "You must specify a group name or group id.")
        try:
            return state.group(group_id) if group_id else state.group_by_name(str(name))
        except SandboxError:
            raise jira_error(404, "Specified group does not exist.") from None

    def offset_params(request: Request, default: int, maximum: int) -> tuple[int, int]:
        start = int_param(request.query_params.get("startAt"), "startAt", 0, "jira")
        size = int_param(request.query_params.get("maxResults"), "maxResults", default, "jira")
        if start < 0 or size < 0:
            raise jira_error(400, "startAt and maxResults must not be negative.")
        return start, min(size, maximum)

    @site.get("/rest/api/3/myself")
    async def jira_myself(request: Request, caller: Caller) -> Response:
        with st().lock:
            return J(views.jira_user(st(), caller, base_url(request)))

    @site.get("/rest/api/3/users/search")
    @site.get("/rest/api/3/users")
    async def jira_users(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            start, size = offset_params(request, 50, 1000)
            base = base_url(request)
            # A bare array with no total: clients page until an empty page (§5.4).
            ids = state.user_order[start : start + size]
            return J([views.jira_user(state, state.users[a], base) for a in ids if a in state.users])

    @site.get("/rest/api/3/user")
    async def jira_get_user(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            user = jira_user_or_404(state, request.query_params.get("accountId"))
            base = base_url(request)
            data = views.jira_user(state, user, base)
            expand = {e for raw in qlist(request, "expand") for e in raw.split(",")}
            visible = state.visible(user)
            if "groups" in expand:
                items = [views.jira_group(g, base) for g in state.sorted_groups(visible)]
                data["groups"] = {"size": len(items), "items": items}
            if "applicationRoles" in expand:
                roles = [
                    {"key": p, "name": views.PRODUCT_NAMES[p]}
                    for p in state.user_products(visible)
                    if p != "confluence"
                ]
                data["applicationRoles"] = {"size": len(roles), "items": roles}
            data["expand"] = "groups,applicationRoles"
            return J(data)

    @site.get("/rest/api/3/user/groups")
    async def jira_user_groups(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            user = state.visible(jira_user_or_404(state, request.query_params.get("accountId")))
            base = base_url(request)
            return J([views.jira_group(g, base) for g in state.sorted_groups(user)])

    @site.get("/rest/api/3/group/bulk")
    async def jira_group_bulk(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            start, size = offset_params(request, 50, 50)
            ids = set(qlist(request, "groupId"))
            names = set(qlist(request, "groupName"))
            access = request.query_params.get("accessType")
            app_key = request.query_params.get("applicationKey")
            groups = []
            for gid in state.group_order:
                group = state.groups[gid]
                if ids and gid not in ids and group.name not in names:
                    continue
                if names and not ids and group.name not in names:
                    continue
                if access == "site-admin" and group.name != "site-admins":
                    continue
                if access == "admin" and not any(r == "atlassian/admin" for _, r in group.roles):
                    continue
                if access == "user" and not any(r == "atlassian/user" for _, r in group.roles):
                    continue
                if app_key and not any(p == app_key for p, _ in group.roles):
                    continue
                groups.append({"name": group.name, "groupId": group.id})
            page = groups[start : start + size]
            return J({"maxResults": size, "startAt": start, "total": len(groups),
                      "isLast": start + size >= len(groups), "values": page})  # fmt: skip

    member_cache: dict[tuple[int, str], list[str]] = {}

    @site.get("/rest/api/3/group/member")
    async def jira_group_member(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            group = jira_group_param(state, request)
            start, size = offset_params(request, 50, 50)
            include_inactive = request.query_params.get("includeInactiveUsers", "false").lower() == "true"
            key = (state._version, f"{id(state)}:{group.id}:{include_inactive}")
            members = member_cache.get(key)
            if members is None:
                member_cache.clear()
                members = sorted(group.members)
                # Jira hides deactivated accounts unless asked (§9.5).
                if not include_inactive:
                    members = [a for a in members if state.users[a].account_status == "active"]
                member_cache[key] = members
            base = base_url(request)
            page = members[start : start + size]
            last = start + size >= len(members)
            params = f"groupId={group.id}&includeInactiveUsers={str(include_inactive).lower()}"
            url = f"{views.jira_rest(base)}/group/member"
            data: dict[str, Any] = {"self": f"{url}?{params}&startAt={start}&maxResults={size}"}
            if not last:
                data["nextPage"] = f"{url}?{params}&startAt={start + size}&maxResults={size}"
            data.update({"maxResults": size, "startAt": start, "total": len(members), "isLast": last,
                         "values": [views.jira_user(state, state.users[a], base) for a in page]})  # fmt: skip
            return J(data)

    @site.post("/rest/api/3/group/user")
    async def jira_add_to_group(request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jira", required=True)
        account_id = body.get("accountId") if isinstance(body, dict) else None
        with st().lock:
            state = jira_state()
            group = jira_group_param(state, request)
            jira_user_or_404(state, account_id)
            if not state.add_member(group.id, str(account_id)):
                raise jira_error(400, f"Cannot add user. User is already a member of '{group.name}'")
            base = base_url(request)
            data = {
                **views.jira_group(group, base),
                "users": {
                    "size": len(group.members),
                    "items": [],
                    "max-results": 50,
                    "start-index": 0,
                    "end-index": 0,
                },
                "expand": "users",
            }
            return J(data, 201)

    @site.delete("/rest/api/3/group/user")
    async def jira_remove_from_group(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            group = jira_group_param(state, request)
            account_id = request.query_params.get("accountId")
            jira_user_or_404(state, account_id)
            if not state.remove_member(group.id, str(account_id)):
                raise jira_error(400, f"Cannot remove user. User is not a member of '{group.name}'")
            return Response(status_code=200)

    @site.get("/rest/api/3/applicationrole")
    async def jira_app_roles(request: Request, caller: Caller) -> Response:
        with st().lock:
            return J(views.application_roles(jira_state(), base_url(request)))

    @site.get("/rest/api/3/applicationrole/{key}")
    async def jira_app_role(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            for role in views.application_roles(jira_state(), base_url(request)):
                if role["key"] == key:
                    return J(role)
            raise jira_error(404, f"The application role '{key}' does not exist.")

    async def search_jql(request: Request, source: dict[str, Any]) -> Response:
        max_results = min(int_param(source.get("maxResults"), "maxResults", 50, "jira"), 5000)
        fields_raw = source.get("fields") or ["id"]
        if isinstance(fields_raw, str):
            fields_raw = fields_raw.split(",")
        fields = {f.strip() for f in fields_raw if f.strip()}
        token = source.get("nextPageToken")
        offset = 0
        if token:
            try:
                offset = int(base64.urlsafe_b64decode(str(token) + "==").decode().removeprefix("o:"))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise jira_error(400, "The nextPageToken is invalid.") from None
        with st().lock:
            state = jira_state()
            try:
                matches = jql.run(state, str(source.get("jql") or ""))
            except jql.JqlError as exc:
                raise jira_error(400, str(exc)) from None
            page = matches[offset : offset + max_results]
            base = base_url(request)
            data: dict[str, Any] = {"issues": [views.jira_issue(state, r, fields, base) for r in page]}
            last = offset + max_results >= len(matches)
            if not last:
                data["nextPageToken"] = (
                    base64.urlsafe_b64encode(f"o:{offset + max_results}".encode()).decode().rstrip("=")
                )
            data["isLast"] = last
            return J(data)

    @site.get("/rest/api/3/search/jql")
    async def jira_search_get(request: Request, caller: Caller) -> Response:
        source = {k: request.query_params.get(k) for k in ("jql", "maxResults", "nextPageToken")}
        source["fields"] = ",".join(qlist(request, "fields"))
        return await search_jql(request, source)

    @site.post("/rest/api/3/search/jql")
    async def jira_search_post(request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jira")
        return await search_jql(request, body if isinstance(body, dict) else {})

    @site.api_route("/rest/api/3/search", methods=["GET", "POST"])
    @site.api_route("/rest/api/2/search", methods=["GET", "POST"])
    async def jira_search_removed(request: Request, caller: Caller) -> Response:
        # CHANGE-2046: the classic search endpoint answers 410 Gone.
        return J(
            jira_body(
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."
            ),
            410,
        )

    @site.get("/rest/api/3/issue/{key}/transitions")
    async def jira_get_transitions(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            try:
                issue = state.request(key)
            except SandboxError:
                raise jira_error(
                    404, "Issue does not exist or you do not have permission to see it."
                ) from None
            return J(views.jira_transitions(issue, base_url(request)))

    @site.post("/rest/api/3/issue/{key}/transitions")
    async def jira_do_transition(key: str, request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jira", required=True)
        transition = body.get("transition") if isinstance(body, dict) else None
        transition_id = transition.get("id") if isinstance(transition, dict) else None
        if not transition_id:
            raise jira_error(400, "", errors={"transition": "Transition id is required."})
        comments = transition_comments(body)
        with st().lock:
            state = jira_state()
            try:
                state.request(key)
            except SandboxError:
                raise jira_error(
                    404, "Issue does not exist or you do not have permission to see it."
                ) from None
            try:
                state.transition(key, str(transition_id), customer=False)
            except SandboxError as exc:
                raise jira_error(400, exc.message) from None
            for text, public in comments:
                state.add_comment(key, caller.account_id, text, public)
            return Response(status_code=204)

    def transition_comments(body: dict[str, Any]) -> list[tuple[str, bool]]:
        """``update.comment[].add`` of a transition: (text, public) pairs, checked before any write.

        The body is rich text: an ADF document in v3, a plain string in v2 (each version refuses
        the other's form). On a service-desk issue a comment is shared with the customer unless
        its ``sd.public.comment`` property says ``internal: true``.
        """
        update = body.get("update") or {}
        operations = update.get("comment") if isinstance(update, dict) else None
        if not operations:
            return []
        v3 = views.JIRA_API_VERSION.get() == 3
        out = []
        for operation in operations if isinstance(operations, list) else [operations]:
            add = operation.get("add") if isinstance(operation, dict) else None
            if not isinstance(add, dict):
                raise jira_error(
                    400, "", errors={"comment": "Only the 'add' operation is supported on comment."}
                )
            raw = add.get("body")
            text = views.adf_text(raw) if v3 else (raw if isinstance(raw, str) else None)
            if text is None:
                expected = "an Atlassian Document (see the Atlassian Document Format)" if v3 else "a string"
                raise jira_error(400, "", errors={"comment": f"Operation value must be {expected}"})
            if not text.strip():
                raise jira_error(400, "", errors={"comment": "Comment body can not be empty!"})
            internal = any(
                isinstance(p, dict) and p.get("key") == "sd.public.comment"
                and isinstance(p.get("value"), dict) and p["value"].get("internal") is True
                for p in add.get("properties") or []
            )  # fmt: skip
            out.append((text, not internal))
        return out

    # ================================================================ JSM (§6)
    sd = "/rest/servicedeskapi"

    def jsm_paging(request: Request, default_limit: int) -> tuple[int, int]:
        start = int_param(request.query_params.get("start"), "start", 0, "jsm")
        limit = int_param(request.query_params.get("limit"), "limit", default_limit, "jsm")
        if start < 0 or limit < 1:
            raise jsm_error(400, "start must be >= 0 and limit >= 1")
        return start, min(limit, 100)

    def find_desk(state: OrgState, desk_id: str) -> dict[str, str]:
        desk = next((d for d in state.service_desks if desk_id in (d["id"], d["projectKey"])), None)
        if desk is None:
            raise jsm_error(
                404, f"The service desk {desk_id} does not exist.", "sd.servicedesk.error.not.found"
            )
        return desk

    @site.get(sd + "/servicedesk")
    async def jsm_desks(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            start, limit = jsm_paging(request, 100)
            base = base_url(request)
            values = [views.jsm_desk(d, base) for d in state.service_desks]
            return J(views.page_of(values, start, limit, f"{base}{sd}/servicedesk", {}))

    @site.get(sd + "/servicedesk/{desk_id}")
    async def jsm_desk(desk_id: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            return J(views.jsm_desk(find_desk(st(), desk_id), base_url(request)))

    @site.get(sd + "/servicedesk/{desk_id}/requesttype")
    async def jsm_request_types(desk_id: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            desk = find_desk(state, desk_id)
            start, limit = jsm_paging(request, 50)
            term = (request.query_params.get("searchQuery") or "").lower()
            base = base_url(request)
            values = [
                views.jsm_request_type(t, base)
                for t in state.request_types
                if t["serviceDeskId"] == desk["id"] and term in t["name"].lower()
            ]
            return J(views.page_of(values, start, limit, f"{base}{sd}/servicedesk/{desk_id}/requesttype", {}))

    @site.get(sd + "/servicedesk/{desk_id}/requesttype/{type_id}/field")
    async def jsm_request_type_fields(desk_id: str, type_id: str, caller: Caller) -> Response:
        with st().lock:
            find_desk(st(), desk_id)
            fields = [
                {
                    "fieldId": field_id,
                    "name": name,
                    "description": "",
                    "required": field_id == "summary",
                    "validValues": [],
                    "jiraSchema": {"type": "string", "system": field_id},
                    "visible": True,
                }
                for field_id, name in (("summary", "Summary"), ("description", "Description"))
            ]
            return J(
                {"requestTypeFields": fields, "canRaiseOnBehalfOf": True, "canAddRequestParticipants": True}
            )

    @site.post(sd + "/request")
    async def jsm_create_request(request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jsm", required=True)
        if not isinstance(body, dict):
            raise jsm_error(400, "The request body must be a JSON object")
        fields = body.get("requestFieldValues") or {}
        summary = str(fields.get("summary") or "").strip()
        if not body.get("serviceDeskId") or not body.get("requestTypeId"):
            raise jsm_error(400, "serviceDeskId and requestTypeId are required")
        if not summary:
            raise jsm_error(400, "Summary: Summary is required.", "sd.request.create.error.field.required")
        with st().lock:
            state = st()
            find_desk(state, str(body["serviceDeskId"]))
            reporter = caller
            on_behalf = body.get("raiseOnBehalfOf")
            if on_behalf:
                found = state.users.get(str(on_behalf)) or state.user_by_email(str(on_behalf))
                if found is None:
                    raise jsm_error(
                        400,
                        f"The user '{on_behalf}' does not exist.",
                        "sd.request.create.error.raiseonbehalfof",
                    )
                reporter = found
            created = state.create_request(
                str(body["serviceDeskId"]), str(body["requestTypeId"]), reporter.account_id, summary,
                str(fields.get("description") or ""), channel="api",
            )  # fmt: skip
            created.participants = [str(p) for p in body.get("requestParticipants") or []]
            return J(views.jsm_request(state, created, base_url(request), set()), 201)

    @site.get(sd + "/request")
    async def jsm_list_requests(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            start, limit = jsm_paging(request, 50)
            params = {k: v for k, v in request.query_params.items() if k not in ("start", "limit")}
            desk_id = params.get("serviceDeskId")
            type_id = params.get("requestTypeId")
            status = params.get("requestStatus", "ALL_REQUESTS")
            ownership = params.get("requestOwnership")
            term = (params.get("searchTerm") or "").lower()
            expand = {e for raw in qlist(request, "expand") for e in raw.split(",")}
            values = []
            for key in state.request_order:
                item = state.requests[key]
                # GET /request is scoped to the caller, not a queue (§6 gotchas).
                if ownership == "ALL_REQUESTS":
                    pass
                elif ownership == "OWNED_REQUESTS":
                    if item.reporter != caller.account_id:
                        continue
                elif ownership == "PARTICIPATED_REQUESTS":
                    if caller.account_id not in item.participants:
                        continue
                elif item.reporter != caller.account_id and caller.account_id not in item.participants:
                    continue
                if desk_id and item.service_desk_id != desk_id:
                    continue
                if type_id and item.request_type_id != type_id:
                    continue
                if status == "OPEN_REQUESTS" and item.category == "DONE":
                    continue
                if status == "CLOSED_REQUESTS" and item.category != "DONE":
                    continue
                if term and term not in item.summary.lower():
                    continue
                values.append(item)
            base = base_url(request)
            rendered = [views.jsm_request(state, r, base, expand) for r in values[start : start + limit]]
            page = views.page_of(values, start, limit, f"{base}{sd}/request", params)
            page["values"] = rendered
            return J(page)

    def jsm_request_or_404(state: OrgState, key: str) -> Any:
        try:
            return state.request(key)
        except SandboxError:
            raise jsm_error(404, f"Request {key} does not exist.", "sd.request.error.not.found") from None

    @site.get(sd + "/request/{key}")
    async def jsm_get_request(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            expand = {e for raw in qlist(request, "expand") for e in raw.split(",")}
            return J(views.jsm_request(state, item, base_url(request), expand))

    @site.get(sd + "/request/{key}/status")
    async def jsm_request_status(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            start, limit = jsm_paging(request, 50)
            values = [views.jsm_status(s, t) for s, t in reversed(item.status_history)]
            return J(views.page_of(values, start, limit, f"{base_url(request)}{sd}/request/{key}/status", {}))

    @site.get(sd + "/request/{key}/comment")
    async def jsm_comments(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            start, limit = jsm_paging(request, 50)
            public = request.query_params.get("public", "true").lower() != "false"
            internal = request.query_params.get("internal", "true").lower() != "false"
            chosen = [c for c in item.comments if (c.public and public) or (not c.public and internal)]
            base = base_url(request)
            values = [views.jsm_comment(state, item, c, base) for c in chosen]
            return J(views.page_of(values, start, limit, f"{base}{sd}/request/{key}/comment", {}))

    @site.post(sd + "/request/{key}/comment")
    async def jsm_add_comment(key: str, request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jsm", required=True)
        text = str(body.get("body") or "") if isinstance(body, dict) else ""
        if not text.strip():
            raise jsm_error(400, "The comment body is required.", "sd.comment.error.body.required")
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            comment = state.add_comment(item.key, caller.account_id, text, bool(body.get("public", True)))
            return J(views.jsm_comment(state, item, comment, base_url(request)), 201)

    @site.get(sd + "/request/{key}/transition")
    async def jsm_transitions(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            start, limit = jsm_paging(request, 50)
            values = [{"id": t, "name": n} for t, n, _ in JSM_TRANSITIONS[item.category]]
            return J(
                views.page_of(values, start, limit, f"{base_url(request)}{sd}/request/{key}/transition", {})
            )

    @site.post(sd + "/request/{key}/transition")
    async def jsm_do_transition(key: str, request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jsm", required=True)
        transition_id = body.get("id") if isinstance(body, dict) else None
        if not transition_id:
            raise jsm_error(400, "The transition id is required.")
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            state.transition(item.key, str(transition_id), customer=True)
            extra = body.get("additionalComment")
            if isinstance(extra, dict) and extra.get("body"):
                state.add_comment(item.key, caller.account_id, str(extra["body"]), True)
            return Response(status_code=204)

    # ================================================================ /_sim (tests and ops; no auth)
    sim = APIRouter(prefix="/_sim")

    @sim.get("/health")
    async def sim_health() -> Response:
        return J({"status": "ok", "users": len(st().users)})

    @sim.get("/info")
    async def sim_info(request: Request) -> Response:
        with st().lock:
            if not rt.base_url:
                rt.base_url = base_url(request)
            info = rt.info()
            info["base_url"] = rt.base_url or base_url(request)
            return J(info)

    @sim.get("/users")
    async def sim_users(request: Request) -> Response:
        with st().lock:
            state = st()
            state.process_due_deletions()
            wanted = set(qlist(request, "accountId"))
            population = request.query_params.get("population")
            out = []
            for account_id in state.user_order:
                user = state.users.get(account_id)
                if user is None or (wanted and account_id not in wanted):
                    continue
                if population and population not in user.populations:
                    continue
                out.append(state.ground_truth(user))
            return J({"users": out, "count": len(out), "now": iso(state.now())})

    @sim.get("/calls")
    async def sim_calls(request: Request) -> Response:
        since = int_param(request.query_params.get("since"), "since", 0, "sim")
        limit = int_param(request.query_params.get("limit"), "limit", 0, "sim")
        calls = rt.calls.since(since, limit or None)
        return J({"calls": calls, "last_seq": rt.calls.last_seq})

    @sim.delete("/calls")
    async def sim_clear_calls() -> Response:
        rt.calls.clear()
        return J({"cleared": True, "last_seq": rt.calls.last_seq})

    @sim.post("/reset")
    async def sim_reset(request: Request) -> Response:
        body = await json_body(request, "sim")
        try:
            rt.reset(body.get("users"), body.get("seed"), body.get("as_of"))
        except (ValueError, TypeError) as exc:
            return J({"error": str(exc)}, 400)
        info = rt.info()
        info["base_url"] = rt.base_url or base_url(request)
        return J(info)

    @sim.get("/config")
    async def sim_get_config() -> Response:
        return J({**rt.config.to_dict(), "endpoints": sorted(rt.endpoints or ())})

    @sim.post("/config")
    async def sim_set_config(request: Request) -> Response:
        body = await json_body(request, "sim")
        try:
            changed = rt.configure(body)
        except (ValueError, TypeError) as exc:
            return J({"error": str(exc)}, 400)
        return J({"changed": changed, "config": rt.config.to_dict()})

    @sim.get("/clock")
    async def sim_get_clock() -> Response:
        return J({"now": iso(st().now()), "as_of": st().as_of.isoformat()})

    @sim.post("/clock")
    async def sim_set_clock(request: Request) -> Response:
        body = await json_body(request, "sim")
        with st().lock:
            state = st()
            try:
                if body.get("now"):
                    target = parse_datetime(str(body["now"]))
                else:
                    target = state.now() + timedelta(
                        days=float(body.get("advance_days", 0)), seconds=float(body.get("advance_seconds", 0))
                    )
            except (ValueError, TypeError) as exc:
                return J({"error": str(exc)}, 400)
            if "running" in body:
                state.clock.running = bool(body["running"])
            deleted = state.set_now(target)
            return J({"now": iso(state.now()), "deleted": deleted})

    @sim.post("/activity")
    async def sim_activity(request: Request) -> Response:
        body = await json_body(request, "sim")
        with st().lock:
            state = st()
            try:
                at = parse_datetime(str(body["at"])) if body.get("at") else None
                product = str(body.get("product", "jira-software"))
                product = {"jira": "jira-software", "jsm": "jira-servicedesk"}.get(product, product)
                user = state.record_activity(str(body["accountId"]), product, at)
            except (KeyError, ValueError, SandboxError) as exc:
                return J({"error": str(exc)}, 400)
            return J(state.ground_truth(user))

    @sim.post("/jsm/email")
    async def sim_jsm_email(request: Request) -> Response:
        """An e-mail to the service desk's address, processed as JSM's e-mail channel does."""
        body = await json_body(request, "sim")
        if not isinstance(body, dict) or not body.get("from"):
            return J({"error": "'from' (the sender's address) is required"}, 400)
        name, address = parseaddr(str(body["from"]))
        if "@" not in address:
            return J({"error": f"not an e-mail address: {body['from']!r}"}, 400)
        desk_id, type_id = body.get("serviceDeskId"), body.get("requestTypeId")
        with st().lock:
            state = st()
            try:
                created, new_customer = state.email_request(
                    address,
                    name,
                    str(body.get("subject") or ""),
                    str(body.get("body") or ""),
                    str(desk_id) if desk_id else None,
                    str(type_id) if type_id else None,
                )
            except SandboxError as exc:
                if exc.kind == "rejected":
                    return J({"processed": False, "reason": exc.message})
                return J({"error": exc.message}, 404 if exc.kind == "not_found" else 400)
            return J(
                {
                    "processed": True,
                    "customerCreated": new_customer,
                    "request": views.jsm_request(state, created, rt.base_url or base_url(request), set()),
                },
                201,
            )

    serve_v2_twins(site)
    for router in (admin, usermgmt, site, sim):
        app.include_router(router)
    runtime.endpoints = frozenset(
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute) and family_of(route.path) not in ("sim", "other")
        for method in route.methods
    )
    runtime.config.validate(runtime.endpoints)  # limits from a knobs file name real routes
    return SimMiddleware(app, runtime)
