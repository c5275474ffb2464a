"""The Atlassian client: HTTP hooks, every paging style, and the one retry and rate-limit policy.

It knows HTTP, not policy: nothing here imports the decisions, the actions or the reports."""
