"""FastAPI app factory: the Admin, user-management, Jira and JSM routes plus ``/_sim``.

Each API family's routes live in a module of their own (``admin_api``, ``admin_users``,
``admin_groups``, ``lifecycle_api``, ``jira_api``, ``jsm_api``, ``sim_api``); this module turns
errors into each family's envelope and assembles the routers in the order the middleware matches
them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from atlassian_sandbox import views
from atlassian_sandbox.admin_api import add_org_routes, add_removed_v1_routes
from atlassian_sandbox.admin_groups import add_group_routes
from atlassian_sandbox.admin_users import add_directory_user_routes
from atlassian_sandbox.errors import ApiError, J, error_body, from_sandbox_error
from atlassian_sandbox.incoming import require_bearer
from atlassian_sandbox.jira_api import add_jira_routes
from atlassian_sandbox.jsm_api import add_jsm_routes
from atlassian_sandbox.lifecycle_api import add_user_management_routes
from atlassian_sandbox.middleware import SimMiddleware, family_of
from atlassian_sandbox.model import SandboxError
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.sim_api import sim_router


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

    # The org API key guards Admin and user management; site routes take Basic auth per route.
    admin = APIRouter(dependencies=[Depends(require_bearer)])
    usermgmt = APIRouter(dependencies=[Depends(require_bearer)])
    site = APIRouter()
    # Registration order is matching order (the middleware names a call by the first route that
    # matches), so it stays: literal segments such as users/count come before users/{account_id}.
    add_org_routes(admin, runtime)
    add_directory_user_routes(admin, runtime)
    add_group_routes(admin, runtime)
    add_removed_v1_routes(admin)
    add_user_management_routes(usermgmt, runtime)
    add_jira_routes(site, runtime)
    add_jsm_routes(site, runtime)
    serve_v2_twins(site)
    sim = sim_router(runtime)
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
