"""Operators of the daily cleanup DAG.

They glue hooks (HTTP) to the pure planner and write the log lines admins read: one summary line
per stage with counts, progress lines on long loops, never a token and never a full user dump.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from atlassian_cleanup.client.retry import StopsAtlassianCallsOnKill
from atlassian_cleanup.decisions.records import format_timestamp
from atlassian_cleanup.outcomes import FAILED, StageOutcome, outcomes_from_xcom, outcomes_to_xcom
from atlassian_cleanup.progress import ProgressLog, counts_in_words
from atlassian_cleanup.settings import audit_dir as default_audit_dir

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.decisions.policy import Policy

MODE_DRY_RUN = "dry_run"
MODE_LIVE = "live"


def resolve_policy(
    policy_path: str,
    params: Mapping[str, Any] | None,
    *,
    conf: Mapping[str, Any] | None = None,
    known_params: Iterable[str] | None = None,
) -> Policy:
    """Load the policy file and apply this run's DAG params; raise a clear failure when invalid.

    With ``known_params``, every key of the run's ``conf`` must be one of them (or a legacy key):
    a misspelt key fails the run instead of being ignored.

    Raised as :class:`AirflowFailException` so Airflow does not retry a run whose configuration is
    wrong: retrying cannot fix a typo, it only delays the message the admin needs to see.
    """
    from atlassian_cleanup.decisions.policy import (
        LEGACY_PARAMS,
        PolicyError,
        apply_overrides,
        conf_key_problems,
        load_policy,
    )

    if known_params is not None:
        problems = conf_key_problems(conf, [*known_params, *LEGACY_PARAMS])
        if problems:
            raise AirflowFailException(
                "The run's conf has keys this DAG does not know; nothing was called or changed:\n- "
                + "\n- ".join(problems)
            )
    try:
        policy = load_policy(policy_path)
        return apply_overrides(policy, dict(params or {}))
    except FileNotFoundError as exc:
        raise AirflowFailException(
            f"Policy file {policy_path} not found. Create it (copy include/policy.yaml) or set "
            "ATLASSIAN_CLEANUP_POLICY to its path."
        ) from exc
    except PolicyError as exc:
        raise AirflowFailException(
            f"Invalid policy ({policy_path}); nothing was called or changed:\n{exc}"
        ) from exc


#: XCom key under which a run's first task publishes the run's policy (see :func:`start_run_policy`).
RUN_POLICY_KEY = "policy"


def run_policy_record(policy: Policy, policy_path: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's policy as it travels between tasks: the effective policy, its SHA-256, the file it
    came from and the params that changed it."""
    from atlassian_cleanup.decisions.policy import active_overrides
    from atlassian_cleanup.reports.audit import policy_fingerprint

    data = policy.to_dict()
    return {
        "policy": data,
        "sha256": policy_fingerprint(data),
        "source": policy_path,
        "overrides": active_overrides(params),
    }


def start_run_policy(task: BaseOperator, policy_path: str, context: Context) -> tuple[Policy, dict[str, Any]]:
    """Resolve the policy file and the run's params once, at the run's first task, and publish it.

    Every later task of the run uses this copy (:func:`policy_of_run`), whatever happens to the
    file meanwhile: the caps approved, the mode shown and the policy in the manifest are the ones
    the plan was made under. The run's conf is checked against the DAG's params first.
    """
    dag_run = context.get("dag_run")
    policy = resolve_policy(
        policy_path,
        context["params"],
        conf=getattr(dag_run, "conf", None) or {},
        known_params=task.dag.params.keys() if task.has_dag() else (),
    )
    record = run_policy_record(policy, policy_path, context["params"])
    context["ti"].xcom_push(key=RUN_POLICY_KEY, value=record)
    task.log.info(
        "%s: policy %s (sha256 %s), %s; run overrides: %s",
        task.task_id,
        policy_path,
        record["sha256"],
        mode_of(policy),
        ", ".join(f"{k}={v!r}" for k, v in record["overrides"].items()) or "none",
    )
    return policy, record


def policy_of_run(record: Any) -> Policy:
    """The :class:`Policy` of a record made by :func:`start_run_policy`, checked against its SHA-256."""
    from atlassian_cleanup.decisions.policy import PolicyError, policy_from_dict
    from atlassian_cleanup.reports.audit import policy_fingerprint

    if not isinstance(record, Mapping) or not isinstance(record.get("policy"), Mapping):
        raise AirflowFailException(
            "This run's policy (published by its first task) is missing; nothing was changed. "
            "Clear the whole run from its first task to start it again."
        )
    if policy_fingerprint(record["policy"]) != record.get("sha256"):
        raise AirflowFailException(
            "This run's policy does not match its SHA-256; nothing was changed. Clear the whole run "
            "from its first task to start it again."
        )
    try:
        return policy_from_dict(record["policy"], source="the run's policy")
    except PolicyError as exc:
        raise AirflowFailException(str(exc)) from exc


def resolve_optional_input(value: Any, context: Context) -> Any:
    """Like :func:`resolve_large_input`, but None when the producing task never pushed it."""
    from airflow.sdk.exceptions import XComNotFound

    try:
        return resolve_large_input(value, context)
    except XComNotFound:
        return None


def run_as_of(context: Context) -> datetime:
    """ "Today" for this run: the logical date, or the run-after time for runs without one."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return datetime.fromtimestamp(moment.timestamp(), tz=UTC)


def mode_of(policy: Policy) -> str:
    return MODE_DRY_RUN if policy.dry_run else MODE_LIVE


DEFAULT_STATE_CONN_ID = "atlassian_cleanup_state"


def state_store_url(conn_id: str) -> str:
    """SQLAlchemy URL of the state database named by the policy's ``state_store.conn_id``.

    A ``postgres`` connection becomes ``postgresql+psycopg://...`` (the driver this package pins);
    a ``sqlite`` connection's host is the database file. When the *default* id is not defined, an
    embedded SQLite file under ``$AIRFLOW_HOME`` is used, so a newcomer needs no database server;
    any other id that is missing is a configuration error, because silently starting from an
    empty memory could warn or action people twice.
    """
    import os

    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if conn_id != DEFAULT_STATE_CONN_ID:
            raise AirflowFailException(
                f"State store connection '{conn_id}' (policy state_store.conn_id) is not defined. "
                "Create it (e.g. AIRFLOW_CONN_..._STATE='postgresql://user:pass@host:5432/db') or "
                f"remove the key to use the embedded SQLite default."
            ) from None
        home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        return f"sqlite:///{Path(home) / 'atlassian_cleanup_state.db'}"
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        from sqlalchemy.engine import URL

        return URL.create(
            "postgresql+psycopg",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    if conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    raise AirflowFailException(
        f"State store connection '{conn_id}' has type '{conn.conn_type}'; use a postgres or sqlite "
        "connection."
    )


def open_state_store(policy: Policy, log: Any) -> Any:
    from atlassian_cleanup.actions.state import StateStore

    url = state_store_url(policy.state_store.conn_id)
    store = StateStore(url)
    log.info("state store: %s", _safe_url(url))
    return store


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def wire_large_input(task: BaseOperator, value: Any) -> Any:
    """Accept a large XCom input (the user table, the plan) without making it a template field.

    Airflow renders every template field before ``execute``: a resolved template field is then
    rewritten key-sorted, stringified, scanned for secrets for the "Rendered Template" view and
    serialised again with the task. For a 100,000-row plan that took 20-40 s per task and showed
    nothing useful. The value is resolved in ``execute`` instead (:func:`resolve_large_input`);
    an ``XComArg`` still makes its producer an upstream task, as a template field would.
    """
    from airflow.sdk import XComArg

    if isinstance(value, XComArg):
        XComArg.apply_upstream_relationship(task, value)
    return value


def resolve_large_input(value: Any, context: Context) -> Any:
    """The value of an input wired by :func:`wire_large_input` (an ``XComArg`` is pulled)."""
    from airflow.sdk import XComArg

    return value.resolve(context) if isinstance(value, XComArg) else value


#: Key of the extraction counts in ``extract_users``' return value (beside the user table).
EXTRACTION_KEY = "extraction"


def extraction_stats(stats: Mapping[str, Any]) -> dict[str, int]:
    """The counts of an extraction that ``compute_inactivity`` needs (JSON-native)."""
    return {key: int(stats[key]) for key in ("directory_users", "retyped", "added")}


class ExtractUsersOperator(StopsAtlassianCallsOnKill, BaseOperator):
    """Pull every directory user with per-product last-active data in bulk.

    One paginated ``POST .../directories/{id}/users/search`` with ``expand=productAccess,groups,
    platformRoles`` replaces a per-user ``last-active-dates`` loop. The next page is requested while
    the current one is normalised (a background thread keeps a page or two ready), and users go
    straight into a column-wise :class:`~atlassian_cleanup.decisions.user_table.UserTable`, so a large org
    never becomes a list of per-user dicts. When a site connection is given, Jira's user list is
    read at the same time, on its own connection, and crossed with the directory: the v2 Admin API
    only documents ``accountType: atlassian``, so bots and portal customers are recognised from
    Jira's ``accountType`` too. Before the users, the groups' product role assignments are read
    once: a user's products are the ones their groups grant, and ``productAccess`` (which leaves
    out the products a user never opened) only dates them.

    Returns the table's JSON form (:meth:`~atlassian_cleanup.decisions.user_table.UserTable.to_json`). As the
    run's first task it also resolves the run's policy (the file plus the run's params, the conf
    checked for unknown keys) before any API call, and publishes it as the ``policy`` XCom that every
    later task uses (:func:`start_run_policy`).

    :param policy_path: policy YAML, validated (with the run's params) before any API call.
    :param admin_conn_id: Airflow connection of the org Admin API (Bearer API key).
    :param site_conn_id: Airflow connection of the Jira site (Basic email + API token), or None.
    """

    template_fields: Sequence[str] = ("policy_path", "admin_conn_id", "site_conn_id")
    ui_color = "#deebff"
    #: Directory pages fetched ahead of the normalisation loop.
    pages_ahead = 4
    #: Users normalised into the table at a time.
    batch_users = 1000
    #: Fields of Jira's user objects kept while the directory is being read.
    _SITE_FIELDS = ("accountId", "accountType", "displayName", "emailAddress", "active", "timeZone")

    def __init__(
        self,
        *,
        policy_path: str,
        admin_conn_id: str = "atlassian_admin",
        site_conn_id: str | None = "atlassian_site",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.policy_path = policy_path
        self.admin_conn_id = admin_conn_id
        self.site_conn_id = site_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        policy, _ = start_run_policy(self, self.policy_path, context)
        table, stats = self.extract(expected=self._expected_users(context, policy))
        self.log.info(
            "extract_users: %d users from directory %s in %.1fs; by status: %s; by account type: %s; "
            "%d never active; %d re-typed and %d added (not in the directory) from Jira's user list",
            len(table),
            stats["directory_id"],
            stats["seconds"],
            counts_in_words(table.value_counts("status")),
            counts_in_words(table.value_counts("account_type")),
            table.never_active(),
            stats["retyped"],
            stats["added"],
        )
        if not len(table):
            raise AirflowFailException(
                "extract_users: the directory returned no users. Check that the connection's org_id "
                "and directory_id point at the right organisation; nothing was planned."
            )
        # The directory's own count travels with the table: the sanity gate judges the source,
        # not the total after Jira's back-fill (which can hide a collapsed directory listing).
        return {**table.to_json(), EXTRACTION_KEY: extraction_stats(stats)}

    def extract(self, expected: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Read the directory (and Jira's user list, concurrently) into a user table.

        :param expected: users expected (the previous run's count), for the progress lines' ETA.
        :return: the table and counts (``directory_id``, ``directory_users``, ``retyped``, ``added``,
            ``seconds``).
        """
        from atlassian_cleanup.decisions.user_table import UserTable

        started = time.monotonic()
        table = UserTable()
        progress = ProgressLog(self.log, "extract_users: directory users", total=expected)
        # The page fetcher, the normaliser and the Jira reader share the GIL. A fetcher whose page
        # has arrived waits up to the switch interval (5 ms by default) for a busy thread to yield,
        # and every such wait lengthens the critical path (one page after the other): ask for
        # quicker hand-overs while extracting.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, 0.001))
        # A full garbage collection walks every object the task process holds (Airflow's modules
        # and the growing table included) and stalls the page loop for 100-200 ms each time;
        # the objects that existed before the extraction are parked outside the collector.
        gc.freeze()
        try:
            return self._extract(table, progress, started)
        finally:
            gc.unfreeze()
            sys.setswitchinterval(switch_interval)

    def _extract(self, table: Any, progress: ProgressLog, started: float) -> tuple[Any, dict[str, Any]]:
        from concurrent.futures import ThreadPoolExecutor
        from contextlib import closing

        from atlassian_cleanup.client.hooks import AtlassianAdminHook
        from atlassian_cleanup.decisions.records import user_record_from_jira, user_record_from_v2
        from atlassian_cleanup.decisions.user_table import import_timestamp_parser

        expected = progress.total
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="extract") as pool:
            site = pool.submit(self._site_accounts, expected) if self.site_conn_id else None
            pool.submit(import_timestamp_parser)
            try:
                with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
                    # What grants access: the groups' product role assignments. productAccess only
                    # lists the products a user opened: it supplies the dates, not the access.
                    grants = self._product_grants(admin)
                    cache: dict[Any, Any] = {}
                    # Closed before the hook: the page thread must stop before its session does.
                    with closing(admin.iter_directory_user_pages(ahead=self.pages_ahead)) as pages:
                        pending: list[dict[str, Any]] = []
                        for page in pages:
                            pending.extend(user_record_from_v2(raw, grants, cache=cache) for raw in page)
                            if len(pending) >= self.batch_users:  # the table's cost is per call
                                table.extend(pending)
                                pending = []
                            progress.update(len(table) + len(pending))
                        table.extend(pending)
                    directory_id = admin.directory_id
            except BaseException:
                if site is not None:
                    site.cancel()
                raise
            progress.update(len(table), force=True)
            site_accounts = site.result() if site is not None else {}

        directory_users = len(table)
        _refuse_duplicates(table.account_ids, directory_id)
        retyped = 0
        added: list[dict[str, Any]] = []
        if site_accounts:
            position = {account_id: i for i, account_id in enumerate(table.account_ids)}
            types = table.values("account_type")
            type_codes = table.array("account_type")
            for account_id, site_user in site_accounts.items():
                index = position.get(account_id)
                if index is None:
                    added.append(dict(user_record_from_jira(site_user)))
                    continue
                site_type = site_user.get("accountType")
                if site_type in ("app", "customer") and types[type_codes[index]] != site_type:
                    table.set_value("account_type", index, site_type)
                    retyped += 1
            table.extend(added)

        stats = {
            "directory_id": directory_id,
            "directory_users": directory_users,
            "retyped": retyped,
            "added": len(added),
            "seconds": time.monotonic() - started,
        }
        return table, stats

    def _product_grants(self, admin: Any) -> dict[str, frozenset[str]]:
        """Group id -> products the group grants, read once per run (see README, "How users are judged")."""
        from atlassian_cleanup.decisions.products import PRODUCT_LABELS
        from atlassian_cleanup.decisions.records import product_grants

        groups = list(admin.iter_groups_with_roles())
        grants = product_grants(groups)
        if not grants:
            raise AirflowFailException(
                f"extract_users: none of the {len(groups)} groups of directory {admin.directory_id} grants "
                "a product role (GET .../groups/{groupId}/role-assignments), so no user would have any "
                "product. Check that the Admin API key may read groups and role assignments "
                "(read:groups:admin, read:directories:admin); nothing was planned."
            )
        per_product: dict[str, int] = {}
        for products in grants.values():
            for product in products:
                per_product[product] = per_product.get(product, 0) + 1
        self.log.info(
            "extract_users: product access from group role assignments: %d of %d groups grant products (%s)",
            len(grants),
            len(groups),
            ", ".join(f"{PRODUCT_LABELS.get(p, p)}: {n}" for p, n in sorted(per_product.items())),
        )
        return grants

    def _expected_users(self, context: Context, policy: Policy) -> int | None:
        """The previous run's user count (for progress ETAs), if the state store knows one."""
        try:
            with open_state_store(policy, self.log) as store:
                previous = store.previous_run(context["run_id"], as_of=run_as_of(context))
            return int(previous.user_count) if previous and previous.user_count else None
        except Exception as exc:  # an estimate only: never a reason to fail the extraction
            self.log.info("extract_users: no user count from the previous run (%s)", exc)
            return None

    def _site_accounts(self, expected: int | None = None) -> dict[str, dict[str, Any]]:
        from atlassian_cleanup.client.hooks import AtlassianSiteHook

        progress = ProgressLog(self.log, "extract_users: Jira accounts", total=expected)
        accounts: dict[str, dict[str, Any]] = {}
        fields = self._SITE_FIELDS
        with AtlassianSiteHook(atlassian_site_conn_id=self.site_conn_id) as site:
            for user in site.iter_users(on_page=lambda _page, count: progress.update(count)):
                accounts[str(user["accountId"])] = {key: user.get(key) for key in fields if key in user}
        progress.update(len(accounts), force=True)
        return accounts


def _refuse_duplicates(account_ids: Sequence[str], directory_id: str) -> None:
    """Stop when the directory listed an account more than once: its pages cannot be trusted."""
    if len(set(account_ids)) == len(account_ids):
        return
    repeated = [account_id for account_id, count in Counter(account_ids).items() if count > 1]
    raise AirflowException(
        f"extract_users: the user search of directory {directory_id} listed {len(repeated)} "
        f"account(s) on more than one page (e.g. {repeated[0]}); the listing changed while it was "
        "read or is broken, so nothing was planned. The task retry reads it again."
    )


class ComputeInactivityOperator(BaseOperator):
    """Plan who is inactive and what happens to them, as of the run's logical date.

    The decision itself is :func:`atlassian_cleanup.decisions.planner.plan_actions`, a pure function; this
    operator only feeds it and logs the outcome. The API user (the site connection's login) is
    passed as protected so the tool can never lock itself out.
    """

    # ``users`` and ``run_policy`` are deliberately not template fields: see :func:`wire_large_input`.
    template_fields: Sequence[str] = ("site_conn_id", "audit_dir", "admin_conn_id")
    ui_color = "#eae6ff"

    def __init__(
        self,
        *,
        users: Any,
        run_policy: Any,
        site_conn_id: str | None = "atlassian_site",
        audit_dir: str | None = None,
        admin_conn_id: str = "atlassian_admin",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.users = wire_large_input(self, users)
        self.run_policy = wire_large_input(self, run_policy)
        self.site_conn_id = site_conn_id
        #: Where ``export_audit`` writes manifests: they witness which state store live runs used.
        self.audit_dir = audit_dir
        self.admin_conn_id = admin_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from atlassian_cleanup.decisions.gates import (
            check_caps,
            missing_activity_share,
            plausibility_warnings,
            sanity_problems,
        )
        from atlassian_cleanup.decisions.planner import plan_actions, plan_to_records, summarise_plan

        record = resolve_large_input(self.run_policy, context)
        policy = policy_of_run(record)
        as_of = run_as_of(context)
        mode = mode_of(policy)
        run_id = context["run_id"]
        from atlassian_cleanup.decisions.user_table import UserTable

        api_user_emails = []
        if self.site_conn_id:
            login = BaseHook.get_connection(self.site_conn_id).login
            if login:
                api_user_emails.append(login)
        # The table extract_users returns (a list of user records is accepted too).
        raw_users = resolve_large_input(self.users, context)
        users = UserTable.from_any(raw_users)
        extraction = raw_users.get(EXTRACTION_KEY) if isinstance(raw_users, Mapping) else None
        # Without extraction counts (records handed in directly) every user is the directory's.
        directory_count = int(extraction["directory_users"]) if extraction else len(users)
        with open_state_store(policy, self.log) as store:
            self._check_memory(store, policy, context)
            history = store.history(users.account_ids)
            previous = store.previous_run(run_id, as_of=as_of)
            missing_share = missing_activity_share(_activity_rows(users))
            if previous is not None and previous.directory_user_count is not None:
                current, before = directory_count, previous.directory_user_count
            else:  # the previous run predates the directory's own count: compare like with like
                current, before = len(users), (previous.user_count if previous else None)
            problems = sanity_problems(
                user_count=current,
                previous_user_count=before,
                missing_activity_share=missing_share,
                policy=policy,
                back_filled=len(users) - directory_count,
            )
            if problems:
                # Safety rule 4: a run whose input looks wrong stops before any write.
                raise AirflowFailException(
                    "compute_inactivity: the extracted data looks wrong, so nothing will be "
                    "warned or changed in this run:\n- " + "\n- ".join(problems)
                )
            started = time.monotonic()
            plan = plan_actions(users, policy, as_of, history=history, api_user_emails=api_user_emails)
            refusals = self._deactivation_refusals(plan) if policy.action == "deactivate" else {}
            if refusals:
                # Planned again with Atlassian's answer, so every reason and warning says "suspend".
                plan = plan_actions(
                    users,
                    policy,
                    as_of,
                    history=history,
                    api_user_emails=api_user_emails,
                    not_deactivatable=refusals,
                )
            summary = summarise_plan(plan)
            records = plan_to_records(plan)
            caps = check_caps(records, user_count=len(users), policy=policy)
            store.start_run(
                run_id,
                as_of=as_of,
                mode=mode,
                user_count=len(users),
                directory_user_count=directory_count,
                missing_activity_share=missing_share,
                summary=summary,
            )
            if not policy.dry_run:
                # From here this store holds the run: say so outside it, for the next run's check.
                record_store_witness(self.dag_id, store.store_id(), run_id)
                self._record_observations(store, records, history, run_id, as_of)
        gate = {
            "mode": mode,
            "exceeded": caps.exceeded,
            "on_cap_exceeded": policy.safety.on_cap_exceeded,
            "lines": caps.lines,
            "caps": caps.to_dict(),
            "policy_sha256": record["sha256"],
        }
        context["ti"].xcom_push(key="gate", value=gate)
        self.log.info(
            "compute_inactivity: as of %s (%s) planned %d users in %.2fs: %s",
            as_of.date().isoformat(),
            mode,
            len(plan),
            time.monotonic() - started,
            _format_summary(summary),
        )
        self.log.info(
            "compute_inactivity: safety caps %s%s",
            "EXCEEDED" if caps.exceeded else "respected",
            "".join(f"; {line}" for line in caps.lines),
        )
        warnings = plausibility_warnings(policy, user_count=len(users))
        if warnings:
            self.log.warning(
                "compute_inactivity: %d policy plausibility warning(s), accepted (also in the digest):\n- %s",
                len(warnings),
                "\n- ".join(warnings),
            )
        return records

    def _check_memory(self, store: Any, policy: Policy, context: Context) -> None:
        """Stop a live run whose state store lost the memory of earlier live runs (safety rule 10).

        A dry run is never stopped (it writes nothing) but says so in its log. The param
        ``acknowledge_new_state_store`` lets one live run start again from this store.
        """
        from atlassian_cleanup.decisions.gates import memory_problems
        from atlassian_cleanup.decisions.policy import ACKNOWLEDGE_NEW_STATE_STORE

        witness = latest_store_witness(self.dag_id, self.audit_dir or default_audit_dir(), self.log)
        problems = memory_problems(
            store_id=store.store_id(),
            store_knows_run=lambda run_id: store.knows_run(run_id, mode=MODE_LIVE),
            witness=witness,
        )
        if not problems:
            return
        text = "\n- ".join(problems)
        if policy.dry_run:
            self.log.warning(
                "compute_inactivity (dry run): the state store looks lost; a live run would stop here:\n- %s",
                text,
            )
            return
        if context["params"].get(ACKNOWLEDGE_NEW_STATE_STORE) is True:
            self.log.warning(
                "compute_inactivity: %s = true for this run: continuing with this state store "
                "(id %s) as a fresh start; earlier warnings and actions are not known to it:\n- %s",
                ACKNOWLEDGE_NEW_STATE_STORE,
                store.store_id(),
                text,
            )
            return
        raise AirflowFailException(
            "compute_inactivity: the state store lost the memory of earlier live runs, so nothing "
            "will be warned or changed in this run:\n- " + text
        )

    def _deactivation_refusals(self, plan: Any) -> dict[str, str | None]:
        """Ask Atlassian, for each account warned or deactivated this run, whether it may be deactivated."""
        from atlassian_cleanup.actions.enforcement import deactivation_refusals
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        asked = plan.loc[
            (plan["planned_action"] == "deactivate") & plan["proposed_action"].isin(["warn", "deactivate"]),
            "account_id",
        ].tolist()
        if not asked:
            return {}
        with AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id) as admin:
            refused = deactivation_refusals(admin, asked)
        self.log.info(
            "compute_inactivity: deactivation checked with GET /users/{id}/manage for %d accounts; %d may "
            "not be deactivated and are planned for suspension instead (%s)",
            len(asked),
            len(refused),
            ", ".join(
                f"{k}: {v}" for k, v in sorted(Counter(r or "no reason" for r in refused.values()).items())
            )
            or "none",
        )
        return refused

    def _record_observations(
        self,
        store: Any,
        records: Sequence[Mapping[str, Any]],
        history: Mapping[str, Any],
        run_id: str,
        as_of: datetime,
    ) -> None:
        """Move users the planner saw come back to ``active`` (a new inactivity cycle)."""
        returned = [row for row in records if row.get("rule") == "activity_seen"]
        for row in returned:
            store.record_event(
                row["account_id"],
                "activity_seen",
                at=as_of,
                run_id=run_id,
                reason=row.get("reason") or "",
                evidence={"product_last_active": row.get("product_last_active")},
            )
        if returned:
            self.log.info("compute_inactivity: %d users active again; their cycle restarts", len(returned))


def _activity_rows(table: Any) -> Iterable[dict[str, Any]]:
    """Per user, what :func:`~.decisions.gates.missing_activity_share` reads, from a user table.

    ``last_active`` is true when the user has any last-active data (their own or a product's);
    the gate only asks whether there is some.
    """
    for account_type, status, seen in zip(
        table.decoded("account_type"), table.decoded("status"), table.has_activity().tolist(), strict=True
    ):
        yield {"account_type": account_type, "status": status, "last_active": seen or None}


def store_witness_key(dag_id: str) -> str:
    """The Airflow Variable recording which state store the DAG's latest live run used."""
    return f"atlassian_cleanup_state_store__{dag_id}"


def record_store_witness(dag_id: str, store_id: str, run_id: str) -> None:
    """Record, in Airflow's metadata (which survives the state store), the store a live run uses."""
    from airflow.sdk import Variable

    Variable.set(
        store_witness_key(dag_id),
        {"store_id": store_id, "run_id": run_id},
        description="Which Atlassian cleanup state store the latest live run used (do not edit).",
        serialize_json=True,
    )


def latest_store_witness(dag_id: str, audit_dir: str, log: Any) -> Any:
    """The latest live run recorded outside the state store, with the store it used, or None.

    Airflow's Variable first (each live run overwrites it); when it is gone (a new metadata
    database), the newest live audit manifest that names a store.
    """
    from airflow.sdk import Variable

    from atlassian_cleanup.decisions.gates import StoreWitness
    from atlassian_cleanup.reports.audit import read_manifests

    key = store_witness_key(dag_id)
    try:
        recorded = Variable.get(key, default=None, deserialize_json=True)
    except (ValueError, TypeError) as exc:
        log.warning("compute_inactivity: Airflow Variable %s is not readable (%s); ignored", key, exc)
        recorded = None
    if isinstance(recorded, Mapping) and recorded.get("store_id") and recorded.get("run_id"):
        return StoreWitness(
            run_id=str(recorded["run_id"]),
            store_id=str(recorded["store_id"]),
            source=f"Airflow Variable {key}",
        )
    for manifest in read_manifests(audit_dir):  # newest first; damaged ones carry no store id
        store_id = manifest.get("state_store_id")
        if manifest.get("mode") == MODE_LIVE and isinstance(store_id, str) and store_id:
            return StoreWitness(
                run_id=str(manifest.get("run_id")),
                store_id=store_id,
                source=f"audit manifest {manifest.get('manifest_file')}",
            )
    return None


#: How the plan summary's keys read in the compute_inactivity log line.
_SUMMARY_LABELS = {
    "total": "users",
    "by_action": "actions",
    "by_rule": "rules",
    "writes": "Atlassian writes planned",
    "protected": "protected",
    "protected_by_kind": "protected by",
}


def _format_summary(summary: Mapping[str, Any]) -> str:
    """The plan summary in words and numbers: ``actions: warn 79, none 221; rules: …``."""
    parts = []
    for key, value in summary.items():
        label = _SUMMARY_LABELS.get(key, key.replace("_", " "))
        if isinstance(value, Mapping):
            parts.append(f"{label}: {counts_in_words(value)}")
        else:
            parts.append(f"{label}: {value}")
    return "; ".join(parts)


class PlanApprovalOperator(ApprovalOperator):
    """Stop before the first write when the plan exceeds the safety caps.

    Within the caps (or in a dry run) it returns at once and the run continues. Above them it
    either fails the run (``safety.on_cap_exceeded: fail``) or waits for an admin to approve the
    plan in the Airflow UI (``approve``; Required Actions page). A rejection or a timeout skips
    every write.

    Returns the decision for the audit (:func:`approval_record`): whether an approval was needed,
    and for a capped run who approved or rejected it and when (Airflow's HITL response).

    :param gate: the ``gate`` XCom of ``compute_inactivity``.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "gate")
    ui_color = "#ffc400"

    def __init__(self, *, gate: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Approve the Atlassian user cleanup plan")
        # A timeout must not act on its own: no answer counts as a rejection.
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)
        kwargs.setdefault("response_timeout", timedelta(days=2))
        super().__init__(**kwargs)
        self.gate = gate

    def execute(self, context: Context) -> Any:
        gate = self.gate or {}
        if gate.get("mode") != MODE_LIVE:
            self.log.info("approve_plan: dry run, nothing will be written; no approval needed")
            return approval_record("not_needed", summary="not needed: dry run")
        if not gate.get("exceeded"):
            self.log.info("approve_plan: the plan is within the safety caps; no approval needed")
            return approval_record("not_needed", summary="not needed: within the safety caps")
        lines = list(gate.get("lines") or [])
        if gate.get("on_cap_exceeded") != "approve":
            context["ti"].xcom_push(
                key="return_value",
                value=approval_record(
                    "stopped",
                    required=True,
                    summary="the plan exceeds the safety caps and safety.on_cap_exceeded is fail: "
                    "the run stopped before any write",
                ),
            )
            raise AirflowFailException(
                "approve_plan: the plan exceeds the safety caps, so nothing was written:\n- "
                + "\n- ".join(lines)
                + "\nCheck the plan (dry run), then raise safety.max_actions_per_run / "
                "max_action_share for one run in the trigger form, or set "
                "safety.on_cap_exceeded: approve to approve such runs in the UI."
            )
        self.body = (
            "This run's plan exceeds the safety caps:\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + "\n\n**Approve** to let the run warn and act as planned; **Reject** (or no answer "
            "within the timeout) skips every write. The planned rows are in the "
            "`compute_inactivity` XCom and, after the run, in the audit CSV. The run acts under "
            f"the policy it was planned with (SHA-256 `{gate.get('policy_sha256')}`), whatever the "
            "policy file says by now."
        )
        self.log.info("approve_plan: waiting for an admin to approve (%s)", "; ".join(lines))
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        # Recorded before the parent acts: on Reject it skips the writes by raising, so nothing
        # after it would run. What is kept is who decided, what and when.
        record = self.decision_of(event)
        context["ti"].xcom_push(key="return_value", value=record)
        self.log.info("approve_plan: %s", record["summary"])
        super().execute_complete(context=context, event=event)
        return record

    def decision_of(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The approval record of a HITL response event (see :func:`approval_record`)."""
        user = event.get("responded_by_user") or {}
        by = str(user.get("name") or user.get("id") or "") or None
        at = event.get("responded_at")
        when = format_timestamp(at) if isinstance(at, datetime) else (str(at) if at else None)
        approved = "error" not in event and self.APPROVE in (event.get("chosen_options") or [])
        decision = "approved" if approved else "rejected"
        if by:
            summary = f"{decision} by {by}" + (f" at {when}" if when else "")
        else:
            summary = f"{decision}: no answer within the timeout" + (f" ({when})" if when else "")
        return approval_record(decision, required=True, by=by, at=when, summary=summary)


def approval_record(
    decision: str,
    *,
    summary: str,
    required: bool = False,
    by: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """What ``approve_plan`` decided, for the manifest, the audit page and the digest.

    :param decision: ``not_needed``, ``stopped`` (caps exceeded, ``on_cap_exceeded: fail``),
        ``approved`` or ``rejected``.
    :param by: the Airflow user who answered (None: nobody, e.g. the timeout answered).
    :param at: when they answered (ISO-8601 UTC).
    """
    return {"required": required, "decision": decision, "by": by, "at": at, "summary": summary}


class _StageOperator(StopsAtlassianCallsOnKill, BaseOperator):
    """One enforcement stage: the rows of the plan with this stage's actions.

    In a dry run it logs exactly what it would do per user. Live, it hands the rows to the
    enforcement engine, which journals intent before each write and the result after it, so a
    retried or re-run task skips what is done. Returns ``{account_id: outcome}`` (the XCom form of
    :class:`~atlassian_cleanup.outcomes.StageOutcome`) for the audit CSV; per-user failures fail
    the task after every other user was processed.

    :param plan: the plan records from ``compute_inactivity``.
    :param run_policy: the run's policy (the ``policy`` XCom of the run's first task): a stage acts
        under the policy the plan was made with, never under a policy file edited since.
    :param policy_path: the policy file, only to find templates named relative to it.
    :param max_user_lines: per-user lines to log (the full list is in the audit CSV; a 100k-user
        org must not turn a task log into a user dump).
    """

    # ``plan`` and ``run_policy`` are deliberately not template fields: see :func:`wire_large_input`.
    template_fields: Sequence[str] = ("policy_path", "admin_conn_id")
    stage_actions: ClassVar[frozenset[str]] = frozenset()
    stage_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        plan: Any,
        run_policy: Any,
        policy_path: str,
        admin_conn_id: str = "atlassian_admin",
        max_user_lines: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = wire_large_input(self, plan)
        self.run_policy = wire_large_input(self, run_policy)
        self.policy_path = policy_path
        self.admin_conn_id = admin_conn_id
        self.max_user_lines = max_user_lines

    def describe(self, row: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        raise NotImplementedError

    def policy(self, context: Context) -> Policy:
        """The run's policy (see :func:`start_run_policy`)."""
        return policy_of_run(resolve_large_input(self.run_policy, context))

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        policy = self.policy(context)
        plan = resolve_large_input(self.plan, context)
        selected = [row for row in plan or [] if row.get("proposed_action") in self.stage_actions]
        if policy.dry_run:
            return outcomes_to_xcom(self._dry_run(selected))
        if not selected:
            self.log.info("%s (live): nothing planned", self.stage_name)
            return {}
        from atlassian_cleanup.actions.enforcement import Enforcer
        from atlassian_cleanup.client.hooks import AtlassianAdminHook

        with open_state_store(policy, self.log) as store:
            if not store.knows_run(context["run_id"], mode=MODE_LIVE):
                # compute_inactivity recorded this run in the store it planned against; a store
                # without it is another one (a worker's own embedded file, a lost database).
                raise AirflowFailException(
                    f"{self.stage_name}: the state store has no record of this run, so it is not "
                    "the one compute_inactivity planned against (an embedded SQLite file on an "
                    "ephemeral or different worker, or a lost database); nothing was sent or "
                    "changed. Point state_store.conn_id at a database every worker shares."
                )
            enforcer = Enforcer(
                hook_factory=lambda: AtlassianAdminHook(atlassian_admin_conn_id=self.admin_conn_id),
                store=store,
                run_id=context["run_id"],
                at=run_as_of(context),
                log=self.log,
                concurrency=policy.safety.write_concurrency,
            )
            outcomes = self.enforce(selected, enforcer, policy, context)
        return outcomes_to_xcom(self._report(outcomes, context))

    def _report(self, outcomes: Sequence[Any], context: Context) -> dict[str, StageOutcome]:
        results = Counter(outcome.result for outcome in outcomes)
        failed = [outcome for outcome in outcomes if outcome.result == FAILED]
        for outcome in failed[: self.max_user_lines]:
            self.log.error("%s: %s failed: %s", self.stage_name, outcome.account_id, outcome.detail)
        by_account = {o.account_id: StageOutcome(o.result, o.detail) for o in outcomes}
        self.log.info(
            "%s (live): %d users: %s",
            self.stage_name,
            len(outcomes),
            counts_in_words(results),
        )
        if failed:
            # Keep what was done for the audit, then fail so the admin sees it and the retry
            # picks up exactly the failed users (done ones are skipped by the journal).
            context["ti"].xcom_push(key="return_value", value=outcomes_to_xcom(by_account))
            raise AirflowException(
                f"{self.stage_name}: {len(failed)} of {len(outcomes)} users failed; see the lines "
                "above. Done users are journalled and will not be written again on retry."
            )
        return by_account

    def _dry_run(self, selected: list[Mapping[str, Any]]) -> dict[str, StageOutcome]:
        outcomes: dict[str, StageOutcome] = {}
        for index, row in enumerate(selected):
            line = self.describe(row)
            outcomes[row["account_id"]] = StageOutcome.planned(line)
            if index < self.max_user_lines:
                self.log.info("%s (dry run): would %s", self.stage_name, line)
        if len(selected) > self.max_user_lines:
            self.log.info(
                "%s (dry run): %d more users not listed here; see the audit CSV",
                self.stage_name,
                len(selected) - self.max_user_lines,
            )
        kinds = Counter(row["proposed_action"] for row in selected)
        self.log.info(
            "%s (dry run): %d users planned (%s); nothing was changed in Atlassian",
            self.stage_name,
            len(selected),
            counts_in_words(kinds),
        )
        return outcomes


def _who(row: Mapping[str, Any]) -> str:
    return f"{row['account_id']} ({row.get('name') or 'no name'})"


class NotifyWarningsOperator(_StageOperator):
    """E-mail users who are about to lose access, once per warning bucket.

    The templates (shipped, or the policy's ``notifications.templates_dir``) are validated first,
    in a dry run too, so a broken template is found before the first live run, never halfway
    through a batch. A user without a visible e-mail address is *reported* (audit outcome and admin
    digest), never guessed.

    :param smtp_conn_id: the customer's own SMTP relay; default: the policy's
        ``notifications.smtp_conn_id``.
    """

    template_fields: Sequence[str] = (*_StageOperator.template_fields, "smtp_conn_id")
    stage_actions = frozenset({"warn", "delete_notice"})
    stage_name = "notify_warnings"
    ui_color = "#fffae6"

    def __init__(self, *, smtp_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smtp_conn_id = smtp_conn_id

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        check_policy_templates(self.policy(context), self.policy_path, WARNING_TEMPLATE_SET)
        return super().execute(context)

    def describe(self, row: Mapping[str, Any]) -> str:
        if not _has_address(row):
            return (
                f"report {_who(row)}: no visible e-mail address, so no warning can be sent "
                f"(access ends on {row.get('action_date')})"
            )
        if row.get("proposed_action") == "delete_notice":
            return (
                f"email {_who(row)}: deletion notice, deletion on {row.get('action_date')} — "
                f"{row.get('reason')}"
            )
        return (
            f"email {_who(row)}: access ends on {row.get('action_date')} "
            f"({row.get('warning_lead_days')}-day warning) — {row.get('reason')}"
        )

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        from atlassian_cleanup.actions.notifications import WarningSender, resolve_templates_dir

        settings = policy.notifications
        with WarningSender(
            smtp_conn_id=self.smtp_conn_id or settings.smtp_conn_id,
            from_email=settings.from_email,
            restore_url=settings.request_access_url,
            templates_dir=resolve_templates_dir(settings.templates_dir, self.policy_path),
        ) as sender:
            return enforcer.warn(
                rows, sender, list_unaddressable=policy.warning.without_email == "action_after_notice"
            )


WARNING_TEMPLATE_SET = "warning"
DIGEST_TEMPLATE_SET = "digest"


def check_policy_templates(policy: Policy, policy_path: str, which: str) -> None:
    """Validate the policy's e-mail templates; a broken set fails the task without retries."""
    from atlassian_cleanup.actions.notifications import (
        DIGEST_TEMPLATES,
        NOTICE_TEMPLATES,
        WARNING_TEMPLATES,
        TemplateError,
        check_templates,
        notice_templates_dir,
        resolve_templates_dir,
    )

    names = WARNING_TEMPLATES if which == WARNING_TEMPLATE_SET else DIGEST_TEMPLATES
    directory = resolve_templates_dir(policy.notifications.templates_dir, policy_path)
    try:
        check_templates(directory, names)
        if which == WARNING_TEMPLATE_SET:
            check_templates(notice_templates_dir(directory), NOTICE_TEMPLATES)
    except TemplateError as exc:
        # A retry cannot fix a template: fail at once with the file and the placeholder.
        raise AirflowFailException(str(exc)) from exc


def _has_address(row: Mapping[str, Any]) -> bool:
    email = str(row.get("email") or "").strip()
    return bool(email) and "@" in email


class ApplyActionsOperator(_StageOperator):
    """Suspend, deactivate or remove product access for the planned users."""

    stage_actions = frozenset({"suspend", "deactivate", "remove_product_access"})
    stage_name = "apply_actions"
    ui_color = "#ffebe6"

    def describe(self, row: Mapping[str, Any]) -> str:
        action = row["proposed_action"]
        if action == "remove_product_access":
            products = ", ".join(row.get("products_to_remove") or [])
            return f"remove {products} access from {_who(row)} — {row.get('reason')}"
        return f"{action} {_who(row)} — {row.get('reason')}"

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        return enforcer.apply(rows)


class DeleteDormantOperator(_StageOperator):
    """Delete accounts this tool actioned long enough ago (Atlassian's 14-day grace applies)."""

    stage_actions = frozenset({"delete"})
    stage_name = "delete_dormant"
    ui_color = "#ff8f73"

    def describe(self, row: Mapping[str, Any]) -> str:
        how = (
            "lifecycle delete, cancellable for 14 days"
            if row.get("claim_status") == "managed"
            else "unmanaged: removed from the directory, no grace"
        )
        return f"delete {_who(row)} ({how}) — {row.get('reason')}"

    def enforce(
        self, rows: list[Mapping[str, Any]], enforcer: Any, policy: Policy, context: Context
    ) -> list[Any]:
        return enforcer.delete(rows)


class ExportAuditOperator(BaseOperator):
    """Write the audit CSV and manifest, and record them on the audit Asset.

    :param plan: plan records from ``compute_inactivity``.
    :param outcomes: the per-user outcome maps returned by the three action stages.
    :param run_policy: the run's policy (the ``policy`` XCom of the run's first task).
    :param approval: what ``approve_plan`` decided (:func:`approval_record`), if it ran.
    :param audit_dir: directory the CSVs go to (shared with the api-server that serves them).
    """

    # The XCom inputs are deliberately not template fields: see :func:`wire_large_input`.
    template_fields: Sequence[str] = ("audit_dir", "policy_path")
    ui_color = "#e3fcef"

    def __init__(
        self,
        *,
        plan: Any,
        outcomes: Any,
        run_policy: Any,
        audit_dir: str,
        policy_path: str,
        approval: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = wire_large_input(self, plan)
        self.outcomes = [wire_large_input(self, stage) for stage in as_list(outcomes)]
        self.run_policy = wire_large_input(self, run_policy)
        # Read, but deliberately not made a direct upstream: on Reject an ApprovalOperator skips
        # its direct downstream tasks whatever their trigger rule, and the audit must still run.
        self.approval = approval
        self.audit_dir = audit_dir
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        failed_upstream = failed_upstream_tasks(self, context)
        plan = resolve_large_input(self.plan, context)
        stage_results = [resolve_large_input(stage, context) for stage in self.outcomes]
        if plan is None:
            # Runs with trigger rule all_done. Without a plan there is nothing to audit; the run
            # must still end failed (a skipped leaf would make it look green).
            if failed_upstream:
                raise AirflowFailException(
                    f"export_audit: no plan was produced because {', '.join(failed_upstream)} "
                    "failed; nothing was written to Atlassian. See those task logs."
                )
            raise AirflowSkipException("export_audit: no plan was produced; nothing to export")
        # A plan exists, so the first task published the run's policy: audit under that one.
        record = resolve_optional_input(self.run_policy, context)
        policy = policy_of_run(record)
        run = run_record(context, record, resolve_optional_input(self.approval, context))
        outcome_by_account: dict[str, StageOutcome] = {}
        for stage_outcomes in stage_results:
            outcome_by_account.update(outcomes_from_xcom(stage_outcomes))
        with contextlib.ExitStack() as stack:
            # A live run reads this run's journal for the CSV and records the run's end: one
            # store session for both. A dry run writes no journal and records nothing.
            store = None if policy.dry_run else stack.enter_context(open_state_store(policy, self.log))
            manifest, rows, summary = self._write_audit(
                context, policy, plan, outcome_by_account, failed_upstream, store, run
            )
        seats = summary["seats"]
        self.log.info(
            "export_audit: billable seats %d before, %d after (%d reclaimed%s)%s",
            seats["total_before"],
            seats["total_after"],
            seats["total_reclaimed"],
            ", projected: dry run" if seats["projected"] else "",
            (
                f"; estimated saving {seats['estimated_saving_per_month']:.2f} {seats['currency']}/month"
                if seats["priced"]
                else "; set licensing.seat_price in the policy to estimate the saving"
            ),
        )
        self.log.info(
            "export_audit: wrote %d rows to %s (sha256 %s, %s)",
            manifest.rows,
            manifest.csv_path,
            manifest.sha256,
            manifest.mode,
        )
        digest = self._send_digest(
            policy,
            context,
            rows,
            outcome_by_account,
            failed_upstream,
            manifest.csv_path,
            summary["seats"],
            run,
        )
        if failed_upstream:
            # The audit is written for every run, but a run whose gate or writes failed must not
            # look green: this task is the DAG's leaf, so it carries the failure to the run.
            raise AirflowFailException(
                f"export_audit: audit written to {manifest.csv_path}, but the run failed in "
                f"{', '.join(failed_upstream)}; see those task logs."
            )
        return {**manifest.to_dict(), "digest": digest}

    def _write_audit(
        self,
        context: Context,
        policy: Policy,
        plan: Sequence[Mapping[str, Any]],
        outcomes: Mapping[str, StageOutcome],
        failed_upstream: Sequence[str],
        store: Any,
        run: Mapping[str, Any],
    ) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
        """Write the CSV and manifest, set the Asset event, and (live) record the run's end."""
        from atlassian_cleanup.decisions.planner import summarise_plan
        from atlassian_cleanup.reports.audit import audit_rows, write_audit
        from atlassian_cleanup.reports.seats import seat_figures

        summary = summarise_plan(plan)
        if failed_upstream:
            summary["failed_tasks"] = list(failed_upstream)
        journal = self._journal_by_account(store, context["run_id"]) if store is not None else {}
        rows = list(audit_rows(plan, outcomes, journal))
        summary["results"] = dict(sorted(Counter(row["result"] for row in rows).items()))
        summary["seats"] = seat_figures(
            rows,
            {row["account_id"]: row["result"] for row in rows},
            policy.licensing,
            dry_run=policy.dry_run,
        )
        logical_date = context.get("logical_date")
        manifest = write_audit(
            rows,
            Path(self.audit_dir),
            run_id=context["run_id"],
            as_of=run_as_of(context).date().isoformat(),
            mode=mode_of(policy),
            logical_date=format_timestamp(logical_date) if logical_date else None,
            summary=summary,
            policy=policy.to_dict(),
            state_store_id=store.store_id() if store is not None else None,
            run=run,
        )
        announce_audit(self, context, manifest)
        if store is not None:
            summary["writes"] = store.write_counts(context["run_id"])
            store.finish_run(context["run_id"], at=run_as_of(context), summary=summary)
        return manifest, rows, summary

    @staticmethod
    def _journal_by_account(store: Any, run_id: str) -> dict[str, dict[str, Any]]:
        """This run's latest journal entry per account: API status and timestamps for the CSV."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in store.journal(run_id=run_id):
            latest[entry.account_id] = {
                "api_status": entry.api_status,
                "intent_at": format_timestamp(entry.intent_at),
                "result_at": format_timestamp(entry.result_at),
            }
        return latest

    def _send_digest(
        self,
        policy: Policy,
        context: Context,
        rows: Sequence[Mapping[str, Any]],
        outcomes: Mapping[str, StageOutcome],
        failed_tasks: Sequence[str],
        csv_path: str,
        seats: Mapping[str, Any],
        run: Mapping[str, Any],
    ) -> str:
        """E-mail the run's figures to ``notifications.admin_emails`` (dry runs too, saying so).

        After the audit is written: the digest points at it. A digest that cannot be sent is
        logged as an error but does not fail the task; the audit, the journal and the run state
        stay the record, and failing here would hide the run's own outcome.
        """
        from atlassian_cleanup.actions.notifications import (
            SmtpUnavailableError,
            TemplateError,
            digest_context,
            resolve_templates_dir,
            send_digest,
        )
        from atlassian_cleanup.decisions.gates import plausibility_warnings

        settings = policy.notifications
        if not settings.admin_emails:
            self.log.info("export_audit: no notifications.admin_emails in the policy; no digest sent")
            return "not configured"
        digest = digest_context(
            plan=rows,
            outcomes=outcomes,
            run_id=context["run_id"],
            as_of=run_as_of(context).date().isoformat(),
            mode=mode_of(policy),
            audit_file=Path(csv_path).name,
            audit_page_url=settings.audit_page_url,
            failed_tasks=failed_tasks,
            seats=seats,
            without_email=policy.warning.without_email,
            policy_warnings=plausibility_warnings(policy, user_count=len(rows)),
            run=run,
        )
        try:
            subject = send_digest(
                digest,
                to=settings.admin_emails,
                smtp_conn_id=settings.smtp_conn_id,
                from_email=settings.from_email,
                templates_dir=resolve_templates_dir(settings.templates_dir, self.policy_path),
            )
        except (TemplateError, SmtpUnavailableError, OSError) as exc:
            self.log.error("export_audit: the admin digest was not sent: %s", exc)
            return f"not sent: {exc}"
        self.log.info(
            "export_audit: admin digest sent to %d address(es): %s", len(settings.admin_emails), subject
        )
        return f"sent: {subject}"


def run_record(
    context: Context, policy_record: Mapping[str, Any] | None, approval: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Who started the run and how, for the manifest, the audit page and the digest.

    ``triggered_by`` is the Airflow user who triggered the run (``DagRun.triggering_user_name``),
    or ``scheduler`` for a scheduled run; ``overrides`` the run params that changed the policy;
    ``approval`` what ``approve_plan`` decided (None when it never ran).
    """
    from atlassian_cleanup.reports.audit import triggered_by

    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    run_type = str(getattr(run_type, "value", run_type) or "") or None  # an enum in the SDK
    return {
        "triggered_by": triggered_by(run_type, getattr(dag_run, "triggering_user_name", None)),
        "run_type": run_type,
        "overrides": dict((policy_record or {}).get("overrides") or {}),
        "policy_file": (policy_record or {}).get("source"),
        "approval": dict(approval) if approval else None,
    }


def announce_audit(task: BaseOperator, context: Context, manifest: Any) -> None:
    """Record the written audit on the task's Asset outlets, so a downstream DAG finds the file.

    Both DAGs' export tasks call this: the event names the CSV, its manifest, the row count, the
    SHA-256 and the mode.
    """
    for outlet in task.outlets:
        context["outlet_events"][outlet].extra = {
            "path": manifest.csv_path,
            "manifest": manifest.csv_path.removesuffix(".csv") + ".manifest.json",
            "rows": manifest.rows,
            "sha256": manifest.sha256,
            "mode": manifest.mode,
        }


def as_list(value: Any) -> list[Any]:
    """A templated field that may hold one XCom value or a list of them, as a list."""
    if value is None:
        return []
    if isinstance(value, Iterable) and not isinstance(value, (str, Mapping)):
        return list(value)
    return [value]


def failed_upstream_tasks(task: BaseOperator, context: Context) -> list[str]:
    """Upstream tasks of ``task`` that failed in this run (for an ``all_done`` audit task)."""
    states = context["ti"].get_task_states(
        dag_id=task.dag_id,
        task_ids=sorted(task.get_flat_relative_ids(upstream=True)),
        run_ids=[context["run_id"]],
    )
    by_task = states.get(context["run_id"], {})
    return sorted(name for name, state in by_task.items() if state in ("failed", "upstream_failed"))
