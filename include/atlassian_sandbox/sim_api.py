"""``/_sim``: the sandbox's own control endpoints for tests and ops (no auth).

Health, info, ground truth, the call log, reset, knobs, the clock, simulated activity and the JSM
e-mail channel. Errors here are plain ``{"error": ...}``: no Atlassian client ever calls them.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import views
from atlassian_sandbox.errors import J
from atlassian_sandbox.incoming import base_url, int_param, json_body, qlist
from atlassian_sandbox.model import JIRA, JSM, SandboxError, iso
from atlassian_sandbox.runtime import Runtime, parse_datetime
from atlassian_sandbox.state import OrgState


def sim_router(rt: Runtime) -> APIRouter:
    def st() -> OrgState:
        return rt.state

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
                product = str(body.get("product", JIRA))
                product = {"jira": JIRA, "jsm": JSM}.get(product, product)
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

    return sim
