"""Developer tooling: the demo runner, the local SMTP sink and the benchmark."""
