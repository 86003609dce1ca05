"""The tools a worker pool runs, and how one attempt of a call runs.

    tools = ToolRegistry(transient=(ConnectionError,), attempts=3, timeout=10)

    @tools.tool
    def lookup_invoice(invoice_id: str, *, tool_call_id: str) -> dict:
        ...  # tool_call_id is the idempotency key: make the side effect once per call

    @tools.tool(timeout=60, transient=(ConnectionError, TimeoutError))
    async def issue_refund(invoice_id: str, amount: float) -> dict: ...

`agentlog tools work mymodule:tools` runs them. A tool receives the call's arguments as
keyword arguments, and the call id as `tool_call_id` if it has a parameter of that
name. An exception of a type the registry (or the tool) declares transient is retried
with exponential backoff until the attempts run out; any other ends the call at once.
A timeout is `TimeoutError`: declare it transient to retry timeouts.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from agentlog.errors import ConfigurationError
from agentlog.loading import load_object

Tool = TypeVar("Tool", bound=Callable[..., Any])
CALL_ID_PARAMETER = "tool_call_id"


@dataclass(frozen=True)
class ToolSpec:
    """One tool and how its calls run: at most `attempts` attempts of at most `timeout`
    seconds each; between attempts a backoff of `backoff` seconds, doubling per attempt
    up to `max_backoff`, of which a random half is waited (so retries spread out)."""

    name: str
    function: Callable[..., Any]
    timeout: float
    attempts: int
    transient: tuple[type[BaseException], ...]
    backoff: float
    max_backoff: float

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.function)

    @functools.cached_property
    def wants_call_id(self) -> bool:
        return CALL_ID_PARAMETER in self.signature.parameters

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(error, self.transient)

    def backoff_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2, 3, ...)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 2))
        return random.uniform(ceiling / 2, ceiling)


def _exception_types(value: Any, what: str) -> tuple[type[BaseException], ...]:
    types = tuple(value) if isinstance(value, list | tuple | set | frozenset) else (value,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ConfigurationError(f"{what} must be exception classes, got {t!r}")
    return types


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{what} must be a positive number, got {value!r}")
    return float(value)


class ToolRegistry:
    """Tools by name, with the defaults their calls run under (each tool may override
    them): `timeout` seconds per attempt, `attempts` in all, which exception types are
    `transient` (retried), and the backoff between attempts."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        attempts: int = 3,
        transient: tuple[type[BaseException], ...] | type[BaseException] = (),
        backoff: float = 0.2,
        max_backoff: float = 10.0,
    ) -> None:
        self.timeout = _positive(timeout, "timeout")
        self.attempts = self._attempts(attempts)
        self.transient = _exception_types(transient, "transient")
        self.backoff = _positive(backoff, "backoff")
        self.max_backoff = _positive(max_backoff, "max_backoff")
        self._tools: dict[str, ToolSpec] = {}

    @staticmethod
    def _attempts(value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"attempts must be a whole number >= 1, got {value!r}")
        return value

    @overload
    def tool(self, function: Tool, /) -> Tool: ...

    @overload
    def tool(
        self,
        function: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        transient: tuple[type[BaseException], ...] | type[BaseException] | None = None,
        backoff: float | None = None,
    ) -> Callable[[Tool], Tool]: ...

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        transient: tuple[type[BaseException], ...] | type[BaseException] | None = None,
        backoff: float | None = None,
    ) -> Any:
        """Register a function (sync or `async def`) as a tool; returns it unchanged.
        `transient` replaces the registry's transient types for this tool."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(
                fn,
                name=name,
                timeout=timeout,
                attempts=attempts,
                transient=transient,
                backoff=backoff,
            )
            return fn

        return register(function) if function is not None else register

    def add(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        transient: tuple[type[BaseException], ...] | type[BaseException] | None = None,
        backoff: float | None = None,
    ) -> ToolSpec:
        if not callable(function):
            raise ConfigurationError(f"a tool must be callable, got {function!r}")
        tool_name = name or getattr(function, "__name__", None)
        if not tool_name:
            raise ConfigurationError(f"give {function!r} a name=")
        if tool_name in self._tools:
            raise ConfigurationError(f"a tool named {tool_name!r} is already registered")
        spec = ToolSpec(
            name=tool_name,
            function=function,
            timeout=self.timeout if timeout is None else _positive(timeout, "timeout"),
            attempts=self.attempts if attempts is None else self._attempts(attempts),
            transient=(
                self.transient if transient is None else _exception_types(transient, "transient")
            ),
            backoff=self.backoff if backoff is None else _positive(backoff, "backoff"),
            max_backoff=self.max_backoff,
        )
        self._tools[tool_name] = spec
        return spec

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


def load_registry(reference: str) -> ToolRegistry:
    """The ToolRegistry named `package.module:NAME`."""
    found = load_object(reference, ToolRegistry, "tool registry", "myagents.tools:registry")
    if not len(found):
        raise ConfigurationError(f"tool registry {reference!r} has no tools")
    return found


@dataclass(frozen=True)
class AttemptOutcome:
    """How one attempt ended: a result, or an error and whether it may be retried."""

    duration_ms: float
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    transient: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


class ArgumentsError(Exception):
    """The call's arguments do not fit the tool (never retried)."""


def bind_arguments(spec: ToolSpec, arguments: Any, call_id: str) -> dict[str, Any]:
    """The keyword arguments of one call, checked against the tool's signature."""
    if not isinstance(arguments, dict):
        raise ArgumentsError(
            f"arguments of {spec.name} must be a JSON object of keyword arguments, "
            f"got {type(arguments).__name__}"
        )
    kwargs = dict(arguments)
    if spec.wants_call_id:
        if CALL_ID_PARAMETER in kwargs:
            raise ArgumentsError(f"{CALL_ID_PARAMETER} is set by the worker, not an argument")
        kwargs[CALL_ID_PARAMETER] = call_id
    try:
        spec.signature.bind(**kwargs)
    except TypeError as exc:
        raise ArgumentsError(f"arguments do not fit {spec.name}: {exc}") from None
    return kwargs


async def run_attempt(
    spec: ToolSpec, kwargs: dict[str, Any], executor: Executor | None
) -> AttemptOutcome:
    """Run one attempt with the tool's timeout. A sync tool runs on `executor`; one that
    times out keeps its thread until it returns, and what it returns is discarded."""
    started = time.perf_counter()

    def outcome(**fields: Any) -> AttemptOutcome:
        return AttemptOutcome(duration_ms=(time.perf_counter() - started) * 1000, **fields)

    deadline = asyncio.timeout(spec.timeout)
    try:
        async with deadline:
            if spec.is_async:
                result = await spec.function(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    executor, functools.partial(spec.function, **kwargs)
                )
    except Exception as exc:
        if deadline.expired():
            error: BaseException = TimeoutError(
                f"{spec.name} did not finish within {spec.timeout:g}s"
            )
        else:
            error = exc
        return outcome(
            error_type=type(error).__name__,
            error_message=str(error) or repr(error),
            transient=spec.is_transient(error),
        )
    return outcome(result=result)
