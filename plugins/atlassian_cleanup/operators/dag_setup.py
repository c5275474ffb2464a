"""What the DAG files need when Airflow parses them, read from the policy in one place.

The DAG files are wiring only: they ask :func:`dag_setup` for the policy path, the timeout of the
tasks that call Atlassian, the failure alert and the restore schedule. Parsing must never fail
on a broken policy (Airflow would show an import error and run nothing, not even an alert), so a
policy that cannot be read gives the defaults here and the run's first task fails with the
policy's own error message. The failure alert still goes out then: to the policy's
``notifications.admin_emails`` when the policy can be read, otherwise to the fallback recipients
in ``ATLASSIAN_CLEANUP_ALERT_EMAILS`` (comma-separated), which also serve a policy without admins.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from atlassian_cleanup.decisions.policy import NotificationsPolicy, RestorePolicy, SafetyPolicy, load_policy
from atlassian_cleanup.decisions.records import valid_email_address
from atlassian_cleanup.settings import policy_path

log = logging.getLogger(__name__)

#: Environment variable with the recipients of failure alerts when the policy cannot name them.
FALLBACK_ALERT_ENV = "ATLASSIAN_CLEANUP_ALERT_EMAILS"

#: Failure alert: no exception text (it may quote Atlassian data such as display names), only what
#: an admin needs to open the right log.
FAILURE_SUBJECT = "Atlassian user cleanup: task {{ ti.task_id }} failed ({{ ds }})"
FAILURE_HTML = (
    "<p>Task <b>{{ ti.task_id }}</b> of DAG <b>{{ ti.dag_id }}</b> failed in run "
    "<code>{{ run_id }}</code> (logical date {{ ds }}, try {{ ti.try_number }}).</p>"
    "<p>Open the run in the Airflow UI for the task log. The audit CSV of the run says what was "
    "done; every write is journalled, so a re-run repeats nothing that succeeded.</p>"
)


@dataclass(frozen=True)
class DagSetup:
    """Parse-time settings of both DAGs.

    :param policy_problem: why the policy could not be read (``None``: it could); the run's first
        task reports the full error, this is only for the parse log.
    """

    policy_path: str
    atlassian_task_timeout: timedelta
    restore_schedule: str
    alert_recipients: tuple[str, ...]
    notifications: NotificationsPolicy = field(default_factory=NotificationsPolicy)
    policy_problem: str | None = None

    def failure_callbacks(self) -> list[Any]:
        """An ``SmtpNotifier`` to :attr:`alert_recipients`, or nothing when there is nobody to tell."""
        if not self.alert_recipients:
            return []
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return [
            SmtpNotifier(
                to=list(self.alert_recipients),
                from_email=self.notifications.from_email,
                smtp_conn_id=self.notifications.smtp_conn_id,
                subject=FAILURE_SUBJECT,
                html_content=FAILURE_HTML,
            )
        ]


def _fallback_entries() -> list[str]:
    raw = os.environ.get(FALLBACK_ALERT_ENV, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def fallback_alert_recipients() -> tuple[str, ...]:
    """The mailable addresses in ``ATLASSIAN_CLEANUP_ALERT_EMAILS`` (comma-separated, blanks ignored).

    An entry that cannot be mailed is left out here, so the other recipients still get the alert,
    and :func:`fallback_alert_problem` makes every run's first task fail until it is fixed.
    """
    return tuple(entry for entry in _fallback_entries() if valid_email_address(entry))


def fallback_alert_problem() -> str | None:
    """What is wrong with ``ATLASSIAN_CLEANUP_ALERT_EMAILS`` and how to fix it, or ``None``.

    A typo here goes unnoticed until the day an alert is due, which is the day the policy is broken
    and nobody else is told: so it is reported when the run starts, not when the alert is sent.
    """
    bad = [entry for entry in _fallback_entries() if not valid_email_address(entry)]
    if not bad:
        return None
    return (
        f"{FALLBACK_ALERT_ENV} holds entries that are not e-mail addresses: "
        + ", ".join(repr(entry) for entry in bad)
        + ". Separate addresses with commas (not semicolons or spaces), e.g. "
        '"ops@example.com,security@example.com", then clear this task.'
    )


def dag_setup(path: str | None = None) -> DagSetup:
    """Read the policy once for the DAG files; never raises."""
    path = path or policy_path()
    fallback = fallback_alert_recipients()
    try:
        policy = load_policy(path)
    except Exception as exc:  # a broken policy must not become a DAG import error
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning(
            "policy %s not usable at parse time (%s); failure alerts go to %s",
            path,
            problem,
            ", ".join(fallback) if fallback else f"nobody ({FALLBACK_ALERT_ENV} is not set)",
        )
        return DagSetup(
            policy_path=path,
            atlassian_task_timeout=timedelta(minutes=SafetyPolicy.task_timeout_minutes),
            restore_schedule=RestorePolicy.schedule,
            alert_recipients=fallback,
            policy_problem=problem,
        )
    return DagSetup(
        policy_path=path,
        atlassian_task_timeout=timedelta(minutes=policy.safety.task_timeout_minutes),
        restore_schedule=policy.restore.schedule or RestorePolicy.schedule,
        alert_recipients=tuple(policy.notifications.admin_emails) or fallback,
        notifications=policy.notifications,
    )
