"""Atlassian Cloud inactive-user cleanup for Apache Airflow.

This package lives under ``plugins/`` but is excluded from plugin scanning by
``plugins/.airflowignore``: Airflow's plugin loader would otherwise import every module in it as a
flat top-level module. It is importable as a package because ``plugins/`` is on ``sys.path``.
"""

from __future__ import annotations

__version__ = "0.1.0"
