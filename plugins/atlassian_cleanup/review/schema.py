"""The review queue's tables, in the state database (created by the state store's migration 3).

``acu_review_queue``
    One row per person whose first action waits for an admin or was approved and not yet carried
    out: ``account_id`` (PK), ``queued_on`` (the day they first entered the queue in this stretch;
    an approve given before it belongs to an earlier stretch and no longer counts), the evidence an
    admin decides on (``email``, ``display_name``, ``policy_rule``, ``action``, ``reason``,
    ``products`` JSON, ``last_active`` JSON product -> ISO date or null, ``due_on``), and the run
    that last saw them (``run_id``, ``seen_on``). Each live run replaces the set: whoever is no
    longer due (active again, actioned, left the org) drops out.
``acu_review_decisions``
    Append-only, one row per decision: ``id``, ``account_id``, ``decision`` (``approve`` | ``keep``),
    ``reason``, ``keep_until`` (keep only), ``decided_by`` (the Airflow user), ``decided_at``,
    ``policy_rule`` (the rule the person was queued under). The latest row of an account is the
    one that counts.
"""

from __future__ import annotations

import sqlalchemy as sa

from atlassian_cleanup.store_db import JSONText, UTCDateTime


def review_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The queue and decision tables, bound to ``metadata``."""
    queue = sa.Table(
        "acu_review_queue",
        metadata,
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("queued_on", sa.Date, nullable=False),
        sa.Column("email", sa.Text, nullable=True),
        sa.Column("display_name", sa.Text, nullable=True),
        sa.Column("policy_rule", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("products", JSONText, nullable=True),
        sa.Column("last_active", JSONText, nullable=True),
        sa.Column("due_on", sa.Date, nullable=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("seen_on", sa.Date, nullable=False),
    )
    decisions = sa.Table(
        "acu_review_decisions",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("keep_until", sa.Date, nullable=True),
        sa.Column("decided_by", sa.String(250), nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=False),
        sa.Column("policy_rule", sa.String(64), nullable=True),
        sa.CheckConstraint("decision IN ('approve', 'keep')", name="acu_review_decision_kind"),
        sa.Index("acu_review_decisions_account", "account_id", "id"),
    )
    return {"queue": queue, "decisions": decisions}


_T = review_tables(sa.MetaData())
QUEUE = _T["queue"]
DECISIONS_TABLE = _T["decisions"]
