"""Who may change something from the audit page, and how a change is told from a forged one.

The page is read-only for everyone who may read the cleanup DAG's runs. Two things can be changed
from it, each with Airflow's own permission model (the auth manager the deployment configured):

* deciding in the review queue needs permission to **edit the cleanup DAG** (SimpleAuthManager:
  the ``user`` role and up); viewers see the queue without buttons;
* restoring accounts needs permission to **trigger the restore DAG** (create its runs).

Every write is a POST that must carry this page's CSRF token (a random value in a ``SameSite=Strict``
cookie, repeated in the form: double submit) and come from this origin (``Origin`` or ``Referer``,
and ``Sec-Fetch-Site`` when the browser sends it). A write without all of it gets 403 and changes
nothing. A GET never changes anything.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, HTTPException, Request, Response

from atlassian_cleanup.settings import CLEANUP_DAG_ID, RESTORE_DAG_ID

CSRF_COOKIE = "acu_csrf"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Permissions:
    """What the logged-in user may do on the page."""

    user: str
    decide: bool = False
    restore: bool = False


def permissions(user: Annotated[BaseUser, Depends(get_user)]) -> Permissions:
    """The logged-in user's name and rights, from the deployment's auth manager.

    A dependency of its own, so tests replace it with ``app.dependency_overrides[permissions]``.
    """
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    return Permissions(
        user=user.get_name(),
        decide=manager.is_authorized_dag(method="PUT", user=user, details=DagDetails(id=CLEANUP_DAG_ID)),
        restore=manager.is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, user=user, details=DagDetails(id=RESTORE_DAG_ID)
        ),
    )


def csrf_token(request: Request) -> str:
    """This browser's token for the page's forms (a new one on its first visit)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def remember_csrf(response: Response, token: str, request: Request, path: str) -> None:
    """Set the token's cookie: HttpOnly, SameSite=Strict, scoped to the page."""
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=path or "/",
    )


def write_refusal(request: Request, form_token: str | None) -> str | None:
    """Why this POST is not a write from this page (``None``: it is)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return f"cross-site request (Sec-Fetch-Site: {fetch_site})"
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return "the request does not say where it comes from (no Origin or Referer)"
    if urlsplit(source).netloc.lower() != (request.headers.get("host") or request.url.netloc).lower():
        return "the request comes from another site"
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not form_token or not hmac.compare_digest(cookie, form_token):
        return "the form's security token is missing or stale; reload the page and try again"
    return None


def require_write(request: Request, form_token: str | None, allowed: bool, what: str) -> None:
    """Refuse (403) a write the user may not make or that is not from this page."""
    if not allowed:
        raise HTTPException(status_code=403, detail=f"You may view this page but not {what}.")
    refusal = write_refusal(request, form_token)
    if refusal:
        raise HTTPException(status_code=403, detail=f"Refused: {refusal}. Nothing was changed.")
