"""The vocabulary of what a write or an e-mail came to: one definition, importable by anything.

It imports nothing, so the audit writer and the audit page (which runs inside the Airflow
api-server) can name results without loading the enforcement engine, the Atlassian client or a
database driver.
"""

from __future__ import annotations

DONE = "done"
SKIPPED_ALREADY_DONE = "skipped_already_done"
SKIPPED_CHANGED = "skipped_changed"
FAILED = "failed"
REPORTED = "reported"
#: Every result a live stage can record for a user (``ActionOutcome.result`` in the engine).
RESULTS: tuple[str, ...] = (DONE, SKIPPED_ALREADY_DONE, SKIPPED_CHANGED, FAILED, REPORTED)
