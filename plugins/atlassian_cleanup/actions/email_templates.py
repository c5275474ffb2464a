"""Where the e-mail templates live and how they are rendered.

Rendering uses an autoescaping Jinja2 environment (Airflow's ``EmailOperator`` does not escape
HTML, and user names come from Atlassian profiles anyone can edit: ``Siobhán O'Brien <script>``
must arrive as text) with ``StrictUndefined``, so a template that names a missing value fails
instead of mailing "Dear ,". Templates live in ``include/templates/``; a customer may point
``notifications.templates_dir`` at a copy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_REPO_TEMPLATES = Path(__file__).resolve().parents[3] / "include" / "templates"
#: Where the shipped e-mail templates live: ``<repo>/include/templates``, or the copy an installed
#: distribution carries as ``atlassian_cleanup/templates`` (pyproject.toml maps the one to the other).
_WHEEL_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_DIR = _REPO_TEMPLATES if _REPO_TEMPLATES.is_dir() else _WHEEL_TEMPLATES
HTML_TEMPLATE = "warning_email.html"
TEXT_TEMPLATE = "warning_email.txt"
DIGEST_HTML_TEMPLATE = "admin_digest.html"
DIGEST_TEXT_TEMPLATE = "admin_digest.txt"
WARNING_TEMPLATES: tuple[str, ...] = (HTML_TEMPLATE, TEXT_TEMPLATE)
NOTICE_HTML_TEMPLATE = "deletion_notice.html"
NOTICE_TEXT_TEMPLATE = "deletion_notice.txt"
#: The deletion notice. A customer's ``templates_dir`` without these files uses the shipped ones.
NOTICE_TEMPLATES: tuple[str, ...] = (NOTICE_HTML_TEMPLATE, NOTICE_TEXT_TEMPLATE)
DIGEST_TEMPLATES: tuple[str, ...] = (DIGEST_HTML_TEMPLATE, DIGEST_TEXT_TEMPLATE)
#: The files a customer's ``templates_dir`` must hold (copy ``include/templates`` and edit).
TEMPLATE_FILES: tuple[str, ...] = WARNING_TEMPLATES + DIGEST_TEMPLATES


class TemplateError(ValueError):
    """A template set is unusable: a file is missing, does not parse, or names unknown values."""


def resolve_templates_dir(templates_dir: str | Path | None, policy_path: str | Path | None = None) -> Path:
    """The template directory: the shipped one, or the policy's (relative to the policy file)."""
    if not templates_dir:
        return TEMPLATE_DIR
    path = Path(templates_dir).expanduser()
    if not path.is_absolute() and policy_path:
        # Relative to the policy file, so a policy and its templates can be moved together.
        path = Path(policy_path).resolve().parent / path
    return path


@functools.lru_cache(maxsize=8)
def _environment(directory: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(directory),
        # Only .html is escaped: a text/plain part escaped as HTML would mail "O&#39;Brien".
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def notice_templates_dir(templates_dir: str | Path | None) -> Path:
    """Where the deletion notice templates are: the customer's directory when it has both, else shipped.

    Template sets made before the notice existed keep working: only the notice comes from
    ``include/templates``.
    """
    directory = resolve_templates_dir(templates_dir)
    if all((directory / name).is_file() for name in NOTICE_TEMPLATES):
        return directory
    return TEMPLATE_DIR


def template_environment(templates_dir: str | Path | None = None) -> Environment:
    """The Jinja2 environment of a template directory (HTML autoescaped, undefined names are errors)."""
    return _environment(str(resolve_templates_dir(templates_dir)))


def render_pair(
    templates_dir: str | Path | None, html_name: str, text_name: str, context: Mapping[str, Any]
) -> tuple[str, str]:
    """The HTML and plain-text parts of one e-mail, from the same context."""
    env = template_environment(templates_dir)
    return env.get_template(html_name).render(**context), env.get_template(text_name).render(**context)


def one_line(value: str) -> str:
    # A header is one line: a newline from a product label or a name must not inject headers.
    return " ".join(str(value).split())
