"""The vocabulary of what a write or an e-mail came to: one definition, importable by anything.

It imports nothing heavy, so the audit writer and the audit page (which runs inside the Airflow
api-server) can name results without loading the enforcement engine, the Atlassian client or a
database driver.

A stage's outcome for one user travels between tasks as a :class:`StageOutcome` (its XCom form is
a plain ``{"result", "detail"}`` mapping); the audit's ``outcome`` column and the digest read
its fields, never a sentence parsed back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: How a run ran, as the audit, the manifest and the digest record it: nothing written, or for real.
MODE_DRY_RUN = "dry_run"
MODE_LIVE = "live"

DONE = "done"
SKIPPED_ALREADY_DONE = "skipped_already_done"
SKIPPED_CHANGED = "skipped_changed"
FAILED = "failed"
REPORTED = "reported"
#: Every result a live stage can record for a user (``ActionOutcome.result`` in the engine).
RESULTS: tuple[str, ...] = (DONE, SKIPPED_ALREADY_DONE, SKIPPED_CHANGED, FAILED, REPORTED)

#: A dry run's write or warning: described, not carried out.
PLANNED = "planned"
#: The stage that would have acted never reported (a gate stopped the run, or the task failed first).
NOT_RUN = "not_run"
#: The plan proposed nothing for the user.
NO_ACTION = "no_action"
#: Values of the audit CSV's ``result`` column.
AUDIT_RESULTS: tuple[str, ...] = (*RESULTS, PLANNED, NOT_RUN, NO_ACTION)

#: How a dry run's outcome reads in the audit's ``outcome`` column and the admin digest.
DRY_RUN_WORDS = "dry run"
#: How the digest counts a planned user whose stage never reported.
NOT_RUN_WORDS = "not run"
#: The audit's ``outcome`` cell of a user without a stage outcome.
NO_OUTCOME_WORDS = "no action"


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did (or, in a dry run, would do) for one user.

    :param result: one of :data:`RESULTS`, or :data:`PLANNED` in a dry run.
    :param detail: one sentence for people: the engine's detail, or "would ..." in a dry run.
    """

    result: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.result not in (*RESULTS, PLANNED):
            raise ValueError(f"unknown stage result {self.result!r}; known: {', '.join((*RESULTS, PLANNED))}")

    @classmethod
    def planned(cls, description: str) -> StageOutcome:
        """A dry run's outcome: what the stage would do, worded ``would <description>``."""
        return cls(PLANNED, f"would {description}")

    @property
    def heading(self) -> str:
        """The word a person reads first: the result, or ``dry run``."""
        return DRY_RUN_WORDS if self.result == PLANNED else self.result

    @property
    def sentence(self) -> str:
        """The audit's ``outcome`` cell: ``done: suspended``, ``dry run: would suspend ...``."""
        return f"{self.heading}: {self.detail}"

    def to_xcom(self) -> dict[str, str]:
        return {"result": self.result, "detail": self.detail}

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any] | str) -> StageOutcome:
        if isinstance(value, str):
            return cls._from_sentence(value)
        if not isinstance(value, Mapping) or not isinstance(value.get("result"), str):
            raise ValueError(f"not a stage outcome: {value!r}")
        return cls(value["result"], str(value.get("detail") or ""))

    @classmethod
    def _from_sentence(cls, sentence: str) -> StageOutcome:
        # Stages of earlier releases returned the audit sentence itself ("done: suspended",
        # "dry run: would suspend ..."). An export_audit retried after an upgrade reads those
        # XComs, and must audit them rather than fail the run the stages already finished.
        heading, separator, detail = sentence.partition(": ")
        result = PLANNED if heading == DRY_RUN_WORDS else heading
        if not separator or result not in (*RESULTS, PLANNED):
            raise ValueError(f"not a stage outcome: {sentence!r}")
        return cls(result, detail)


def outcomes_to_xcom(outcomes: Mapping[str, StageOutcome]) -> dict[str, dict[str, str]]:
    """A stage's ``{account_id: outcome}`` in its JSON-native XCom form."""
    return {account_id: outcome.to_xcom() for account_id, outcome in outcomes.items()}


def outcomes_from_xcom(value: Mapping[str, Any] | None) -> dict[str, StageOutcome]:
    """The ``{account_id: outcome}`` a stage returned (None: the stage never reported)."""
    return {account_id: StageOutcome.from_xcom(item) for account_id, item in (value or {}).items()}
