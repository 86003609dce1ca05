"""One error tree: every error agentlog raises on purpose is defined in `agentlog.errors`,
drawn in its docstring exactly as the classes inherit, and caught by `import agentlog`."""

from __future__ import annotations

import importlib
import pkgutil
import re
import tomllib
from pathlib import Path

import agentlog
import agentlog.errors

ROOT = Path(__file__).resolve().parent.parent.parent

# A node of the drawing: the branches of its ancestors ("│   " or "    " each), then
# "├── " or "└── " (none for a root), then the class name. Lines with no name after the
# branches continue the description of the node above.
_NODE = re.compile(r"^    (?P<branches>(?:│   |    )*)(?:(?:├|└)── )?(?P<name>[A-Z]\w*)\b")


def drawn_tree(docstring: str) -> dict[str, str | None]:
    """Each class the docstring's drawing names, with the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in docstring.splitlines():
        if not line.startswith("    ") or not line.strip():
            continue
        found = _NODE.match(line)
        if found is None:
            continue
        before_name = line[: found.start("name")]
        if before_name.strip() and not before_name.rstrip().endswith("──"):
            continue  # a description continued under its node
        depth = 0 if before_name == "    " else len(found["branches"]) // 4 + 1
        del path[depth:]
        parents[found["name"]] = path[-1] if path else None
        path.append(found["name"])
    return parents


def real_tree() -> dict[str, str | None]:
    """Each exception class agentlog.errors defines, with its base from agentlog.errors."""
    tree: dict[str, str | None] = {}
    for name, value in vars(agentlog.errors).items():
        if isinstance(value, type) and issubclass(value, BaseException):
            if value.__module__ != agentlog.errors.__name__:
                continue
            own = [b.__name__ for b in value.__bases__ if b.__module__ == value.__module__]
            assert len(own) <= 1, f"{name} has two agentlog bases: {own}"
            tree[name] = own[0] if own else None
    return tree


def test_the_drawing_is_the_class_tree() -> None:
    assert agentlog.errors.__doc__ is not None
    assert drawn_tree(agentlog.errors.__doc__) == real_tree()


def test_the_drawing_reader_sees_nesting_and_skips_continued_descriptions() -> None:
    drawing = (
        "    Top\n"
        "    ├── Left          a description\n"
        "    │   └── Deep      that goes on\n"
        "    │                 on a second line\n"
        "    └── Right\n"
    )
    assert drawn_tree(drawing) == {"Top": None, "Left": "Top", "Deep": "Left", "Right": "Top"}


def test_one_family_under_agentlog_error() -> None:
    roots = [name for name, parent in real_tree().items() if parent is None]
    assert roots == ["AgentlogError"]
    assert issubclass(agentlog.errors.MissingExtra, ImportError)


def test_import_agentlog_catches_every_error() -> None:
    """`from agentlog import SpoolError` (and every other) is the class raised."""
    for name in real_tree():
        assert name in agentlog.__all__
        assert getattr(agentlog, name) is getattr(agentlog.errors, name)
    assert set(agentlog.errors.__all__) - {"UndeliveredEvent"} == set(real_tree())


def every_module() -> list[str]:
    """Every module the wheel installs: the packages pyproject lists, and their modules."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    names: set[str] = set()
    for package_name in setuptools["packages"]:
        package = importlib.import_module(package_name)
        names.add(package_name)
        for found in pkgutil.iter_modules(package.__path__, f"{package_name}."):
            names.add(found.name)
    return sorted(names)


def test_no_part_defines_an_error_of_its_own() -> None:
    """The parts re-export their errors but define none: any exception class elsewhere is
    a private signal (an underscore name that never leaves its part), or a BaseException
    that stops a run (a re-run's Diverged), not an error."""
    stray = []
    for module_name in every_module():
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, Exception)
                and value.__module__ == module_name
                and module_name != agentlog.errors.__name__
                and not name.startswith("_")
            ):
                stray.append(f"{module_name}.{name}")
    assert stray == []
    assert len(every_module()) > 100  # the walk found the parts, not just the core
