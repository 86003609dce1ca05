"""The one loader of `MODULE:NAME` options (`agents run`, `tools work`, `--projection`,
`replay rerun --agent/--llm/--tools`).

The current directory is searched first, as `python -m` does, so a module next to the
user (`support_agents.py`) loads whichever command names it. Every failure is one
`ConfigurationError` line naming the option's value.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar, cast

from agentlog.errors import ConfigurationError

T = TypeVar("T")


def load_module(name: str, what: str) -> ModuleType:
    """The module `name`, the current directory searched first as `python -m` does."""
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {name!r} for {what}: {exc}") from None
    except Exception as exc:  # the module itself failed: name it, with its error
        raise ConfigurationError(
            f"importing {name!r} for {what} failed: {type(exc).__name__}: {exc}"
        ) from None


def load_object(spec: str, expected: type[T], what: str, example: str = "module:NAME") -> T:
    """The instance of `expected` that `MODULE:NAME` names."""
    found = _named(spec, what, example)
    if not isinstance(found, expected):
        raise ConfigurationError(
            f"{spec!r} is {_a(type(found).__name__)}, not {_a(expected.__name__)} object ({what})"
        )
    return found


def load_class(spec: str, base: type[T], what: str, example: str = "module:Class") -> type[T]:
    """The subclass of `base` that `MODULE:NAME` names."""
    found = _named(spec, what, example)
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ConfigurationError(f"{spec!r} is not a {base.__name__} subclass ({what})")
    return found


def load_callable(spec: str, what: str, example: str = "module:function") -> Callable[..., Any]:
    """The function (or any callable) that `MODULE:NAME` names."""
    found = _named(spec, what, example)
    if not callable(found):
        raise ConfigurationError(f"{what} {spec!r} is not callable")
    return cast(Callable[..., Any], found)


def _named(spec: str, what: str, example: str) -> object:
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise ConfigurationError(f"{what} {spec!r} is not MODULE:NAME (e.g. {example})")
    module = load_module(module_name, what)
    found: object = module
    for part in name.split("."):
        if not hasattr(found, part):
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {name!r} ({what} {spec!r})"
            )
        found = getattr(found, part)
    return found


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
