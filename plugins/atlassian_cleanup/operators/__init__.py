"""The Airflow operators: thin glue that reads the run's context, calls the client, the
decisions and the actions, and writes the log lines admins read."""
