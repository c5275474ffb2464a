"""The reports: audit files, seat figures and the audit page in the Airflow UI.

The page imports neither the Atlassian client nor the write engine."""
