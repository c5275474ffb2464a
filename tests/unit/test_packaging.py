"""pyproject.toml's distribution agrees with the pinned files and with what Airflow requires of it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
#: Deployment choices (the compose file's executor; httpx2 and pathspec only quiet deprecation
#: warnings that Airflow's own code raises), not needs of the package.
DEPLOYMENT_ONLY = {"celery", "apache-airflow-providers-celery", "httpx2", "pathspec"}


def _pins() -> dict[str, Requirement]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = requirement
    return pins


def test_every_pinned_runtime_requirement_satisfies_the_distributions_range():
    ranges = {canonicalize_name(Requirement(d).name): Requirement(d) for d in PROJECT["dependencies"]}
    for name, pin in _pins().items():
        if name in DEPLOYMENT_ONLY:
            assert name not in ranges
            continue
        assert name in ranges, f"{name} is pinned in requirements.txt but not a dependency in pyproject.toml"
        (version,) = [spec.version for spec in pin.specifier]
        assert ranges[name].specifier.contains(version), (name, version, str(ranges[name].specifier))
        assert ranges[name].extras == pin.extras, name
    assert set(ranges) <= set(_pins()), "a dependency of the distribution is not pinned for the tests"


def test_provider_info_names_this_distribution():
    # Airflow ignores a provider whose package-name differs from the installed distribution's name.
    from atlassian_cleanup.provider_info import get_provider_info

    info = get_provider_info()
    assert info["package-name"] == PROJECT["name"]
    assert PROJECT["version"] in info["versions"]
    entry = PROJECT["entry-points"]["apache_airflow_provider"]["provider_info"]
    module, function = entry.split(":")
    assert (module, function) == ("atlassian_cleanup.provider_info", "get_provider_info")


def test_registered_hooks_exist_and_carry_the_registered_type():
    import importlib

    from atlassian_cleanup.provider_info import get_provider_info

    for connection in get_provider_info()["connection-types"]:
        module, _, name = connection["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == connection["connection-type"]
        assert hook.hook_name == connection["hook-name"]
        assert callable(hook.test_connection)
