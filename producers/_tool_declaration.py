"""What a `@recorder.tool` function declares: its name, the first paragraph of its
docstring and a JSON schema of its parameters from the signature, recorded once per
conversation as `tools_declared` so that exports (the training data's `tools`) know it."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

# The parameter through which tool workers pass the call id: not the model's to fill.
_NOT_ARGUMENTS = {"self", "cls", "tool_call_id"}
_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
}


def declaration(function: Callable[..., Any], name: str) -> dict[str, Any]:
    """`{"name", "description", "parameters"}` for the tools_declared event."""
    doc = inspect.getdoc(function) or ""
    description = " ".join(doc.split("\n\n", 1)[0].split())
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: no type then
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in _NOT_ARGUMENTS or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        properties[parameter.name] = _schema_of(hints.get(parameter.name))
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {"name": name, "description": description, "parameters": parameters}


def _schema_of(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation) or annotation
    if origin in _JSON_TYPES:
        return {"type": _JSON_TYPES[origin]}
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(arguments) == 1:  # Optional[X] / X | None
        return _schema_of(arguments[0])
    return {}
