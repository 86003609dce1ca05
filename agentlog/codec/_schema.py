"""Derive the Avro schema of the envelope from the pydantic event models."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from agentlog.errors import SchemaError
from agentlog.events import AVRO_NAMESPACE, WIRE_PAYLOAD_TYPES, Event

_PRIMITIVES: dict[Any, Any] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
    datetime: {"type": "long", "logicalType": "timestamp-micros"},
}


def event_schema() -> dict[str, Any]:
    """The Avro schema of `agentlog.Event` as the current models define it."""
    schema = _AvroBuilder().record(Event)
    assert isinstance(schema, dict)  # the first mention of a record defines it
    return schema


class _AvroBuilder:
    def __init__(self) -> None:
        self._defined: set[str] = set()

    def record(self, model: type[BaseModel]) -> dict[str, Any] | str:
        name = f"{AVRO_NAMESPACE}.{model.__name__}"
        if name in self._defined:
            return name
        self._defined.add(name)
        fields = []
        for field_name, info in model.model_fields.items():
            if field_name == "payload" and model is Event:
                avro_type: Any = [self.record(p) for p in WIRE_PAYLOAD_TYPES]
            else:
                avro_type = self.type_of(info.annotation, f"{model.__name__}.{field_name}")
            field: dict[str, Any] = {"name": field_name, "type": avro_type}
            if info.description:
                field["doc"] = info.description
            if info.default is not PydanticUndefined:
                field["default"] = info.default
            fields.append(field)
        schema: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
        if model.__doc__ and not model.__doc__.startswith(("A base", "Base")):
            schema["doc"] = " ".join(model.__doc__.split())
        return schema

    def type_of(self, annotation: Any, where: str) -> Any:
        if annotation in _PRIMITIVES:
            return _PRIMITIVES[annotation]
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            members = [a for a in args if a is not type(None)]
            if len(members) == 1 and len(args) == 2:
                return ["null", self.type_of(members[0], where)]
        if origin is list and len(args) == 1:
            return {"type": "array", "items": self.type_of(args[0], where)}
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return self.record(annotation)
        raise SchemaError(f"{where}: no Avro mapping for type {annotation!r}")
