"""The decisions: the policy file, the user table, the planner and its gates.

Pure functions only: nothing here imports a hook, HTTP, a database or Airflow."""
