"""The policy defaults are declared once, and every place that states one agrees with the loader.

The independent truth is what a reader sees: the values and the ``Default:`` comments of the
shipped ``include/policy.yaml`` and the key table of the README. Each is parsed here on its own
and compared with what an empty policy loads as; the schema, the fix hints and the trigger form
are compared with the documented file, never with the code's own constants.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlassian_cleanup.decisions.policy import (
    PARAM_SCHEMAS,
    PolicyError,
    policy_from_dict,
    policy_json_schema,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "include" / "policy.yaml"
README = REPO / "README.md"

# The text after "Default:" up to the end of its sentence, an explanation in brackets or "= ...".
_DEFAULT_SENTENCE = re.compile(r"Default: (.+?)(?:\.\s|\.$| \(| =|$)")


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"safety": {"max_action_share": 0.1}}`` -> ``{"safety.max_action_share": 0.1}``.

    Per-product mappings are values, not sections.
    """
    result: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("products", "product_seat_prices"):
            result.update(_leaves(value, f"{prefix}{key}."))
        else:
            result[f"{prefix}{key}"] = value
    return result


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:  # a bare cron expression such as */10 * * * * is no YAML scalar
        return text


def _loaded_defaults() -> dict[str, Any]:
    return _leaves(policy_from_dict({}).to_dict())


def _shipped_comment_defaults() -> dict[str, Any]:
    """Key path -> the value the comment block above the key states after "Default:"."""
    found: dict[str, Any] = {}
    parents: list[tuple[int, str]] = []
    comments: list[str] = []
    for line in SHIPPED.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped.lstrip("#").strip())
            continue
        key = re.match(r"^(\s*)([a-z_]+):", line)
        if key is not None:
            indent = len(key.group(1))
            while parents and parents[-1][0] >= indent:
                parents.pop()
            path = ".".join([*(name for _, name in parents), key.group(2)])
            stated = _DEFAULT_SENTENCE.search(" ".join(comments))
            if stated is not None:
                found[path] = _yaml_value(stated.group(1))
            parents.append((indent, key.group(2)))
        comments = []
    return found


def _readme_table_defaults() -> dict[str, Any]:
    """Key path -> default, from the key table of the README's policy section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## The policy: `include/policy.yaml`", 1)[1].split("\n### ", 1)[0]
    found: dict[str, Any] = {}
    for row in re.findall(r"^\| (`.+?) \| (`.+?) \| .+ \|$", section, flags=re.MULTILINE):
        keys = [key.strip("`") for key in row[0].split(" / ")]
        paths = [keys[0], *(keys[0].rsplit(".", 1)[0] + key for key in keys[1:])]
        cells = row[1].split(" / ")
        cells = cells if len(cells) == len(paths) else cells * len(paths)
        for path, cell in zip(paths, cells, strict=True):
            if re.fullmatch(r"(`[^`]+`, )+`[^`]+`", cell):
                found[path] = re.findall(r"`([^`]+)`", cell)
            else:
                found[path] = _yaml_value(re.match(r"`([^`]*)`", cell).group(1))
    return found


def test_the_shipped_file_sets_every_key_to_its_default():
    shipped = _leaves(yaml.safe_load(SHIPPED.read_text(encoding="utf-8")))
    assert shipped == _loaded_defaults()


def test_every_default_comment_of_the_shipped_file_is_the_loaded_default():
    documented = _shipped_comment_defaults()
    assert documented == _loaded_defaults()


def test_the_readme_table_documents_every_key_with_its_loaded_default():
    documented = _readme_table_defaults()
    assert documented == _loaded_defaults()


def test_the_schema_default_of_every_key_is_the_documented_one():
    shipped = _leaves(yaml.safe_load(SHIPPED.read_text(encoding="utf-8")))

    def schema_defaults(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, sub in schema["properties"].items():
            if "properties" in sub:
                assert "default" not in sub, f"section {prefix}{key} has a default of its own"
                result.update(schema_defaults(sub, f"{prefix}{key}."))
            else:
                result[f"{prefix}{key}"] = sub["default"]
        return result

    assert schema_defaults(policy_json_schema()) == shipped


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("inactivity.default_days", 0),
        ("delete_notice_days", -1),
        ("new_user_grace_days", -1),
        ("restored_grace_days", -1),
        ("safety.max_actions_per_run", -1),
        ("safety.max_action_share", 0),
        ("safety.min_user_count_ratio", 2),
        ("safety.max_missing_activity_share", 0),
        ("safety.write_concurrency", 0),
        ("safety.task_timeout_minutes", 0),
        ("restore.max_restores_per_run", -1),
        ("restore.request_type", ""),
        ("notifications.smtp_conn_id", "no spaces"),
        ("warning.lead_days", [0]),
    ],
)
def test_a_fix_hint_quotes_the_documented_default_as_its_example(path, bad):
    section, _, key = path.rpartition(".")
    data = {section: {key: bad}} if section else {key: bad}
    with pytest.raises(PolicyError) as caught:
        policy_from_dict(data)
    documented = _leaves(yaml.safe_load(SHIPPED.read_text(encoding="utf-8")))[path]
    (problem,) = caught.value.problems
    assert f"e.g. {documented}" in problem


def test_the_lead_days_param_suggests_the_documented_lead_days():
    documented = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["warning"]["lead_days"]
    example = ", ".join(str(days) for days in documented)
    assert f"e.g. {example};" in PARAM_SCHEMAS["warning_lead_days"]["description"]
