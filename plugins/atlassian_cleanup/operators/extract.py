"""The cleanup DAG's first task: every directory user, with per-product activity, in a user table."""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from atlassian_cleanup.client.retry import StopsAtlassianCallsOnKill
from atlassian_cleanup.operators.base import open_state_store, run_as_of, start_run_policy
from atlassian_cleanup.progress import ProgressLog, counts_in_words

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.decisions.policy import Policy


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

    Returns a reference to the table written as Parquet (:mod:`~atlassian_cleanup.operators.handoff`). As the
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
        from atlassian_cleanup.operators.handoff import prepare_run_folder

        policy, _ = start_run_policy(self, self.policy_path, context)
        prepare_run_folder(context)  # a storage setting that cannot be used fails before any call
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
        from atlassian_cleanup.operators.handoff import users_to_arrow, write_table

        # The table goes to object storage as Parquet; XCom holds the reference. The directory's
        # own count travels with it: the sanity gate judges the source, not the total after
        # Jira's back-fill (which can hide a collapsed directory listing).
        reference = write_table(
            users_to_arrow(table), context, "users", extra={EXTRACTION_KEY: extraction_stats(stats)}
        )
        self.log.info(
            "extract_users: user table written to %s (%d rows, %d bytes, sha256 %s)",
            reference["path"],
            reference["rows"],
            reference["bytes"],
            reference["sha256"],
        )
        return reference

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
                    directory_id = admin.directory_label  # one id, or several comma-separated
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
                f"extract_users: none of the {len(groups)} groups of directories {admin.directory_label} "
                "grants a product role (GET .../groups/{groupId}/role-assignments), so no user would have "
                "any product. Check that the Admin API key may read groups and role assignments "
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
