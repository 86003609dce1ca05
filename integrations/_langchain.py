"""The implementation behind `agentlog.integrations.langchain`: its face says how to use it."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from agentlog.integrations._openai_shapes import tool_definitions
from agentlog.integrations._recording import (
    event_id,
    json_value,
    plain,
    require,
    safely,
    sync_recorder,
    text_parts,
)

require("langchain_core", "langchain")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402

_FINISH = {"tool_calls": "tool_call", "tool_use": "tool_call", "end_turn": "stop"}
_NOT_PARAMETERS = {"model", "model_name", "tools", "_type"}


def message_parts(message: Any) -> dict[str, Any]:
    """A LangChain message as an OTel GenAI InputMessage."""
    kind = getattr(message, "type", None)
    if kind == "tool":
        response = json_value(_text(message.content))
        part = {"type": "tool_call_response", "id": message.tool_call_id, "response": response}
        return {"role": "tool", "parts": [part]}
    parts = text_parts(message.content)
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id") or "",
                "name": call.get("name", ""),
                "arguments": plain(call.get("args")),
            }
        )
    role = {"human": "user", "ai": "assistant", "system": "system"}.get(kind or "", "user")
    return {"role": role, "parts": parts}


def _text(content: Any) -> Any:
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content


class _Run:
    __slots__ = ("conversation_id", "agent", "started", "first_token", "request", "tool")

    def __init__(self, conversation_id: str, agent: str) -> None:
        self.conversation_id = conversation_id
        self.agent = agent
        self.started = time.perf_counter()
        self.first_token: float | None = None
        self.request: dict[str, Any] = {}
        self.tool: tuple[str, str] | None = None  # (call id, tool name)


class Handler(BaseCallbackHandler):
    """A LangChain callback handler recording to a `Recorder`."""

    raise_error = False  # a failure to record never fails the run
    run_inline = True  # in order, in the run's own thread

    def __init__(self, recorder: Any, *, agent: str | None = None) -> None:
        self.recorder = sync_recorder(recorder, "agentlog.integrations.langchain.Handler")
        self.agent = agent
        self._conversations: dict[UUID, str] = {}  # run id -> conversation, while it runs
        self._runs: dict[UUID, _Run] = {}

    # --- which conversation, which agent -----------------------------------------

    def _conversation(
        self, run_id: UUID, parent_run_id: UUID | None, metadata: dict[str, Any] | None
    ) -> str:
        thread = (metadata or {}).get("thread_id")
        if thread is not None:
            found = str(thread)
        elif parent_run_id is not None and parent_run_id in self._conversations:
            found = self._conversations[parent_run_id]
        else:
            found = str(parent_run_id or run_id)
        self._conversations[run_id] = found
        return found

    def _agent(self, metadata: dict[str, Any] | None) -> str:
        return self.agent or str((metadata or {}).get("langgraph_node") or "agent")

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._conversation(run_id, parent_run_id, metadata)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._conversations.pop(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._conversations.pop(run_id, None)

    # --- chat models --------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        invocation_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = _Run(self._conversation(run_id, parent_run_id, metadata), self._agent(metadata))
        params = invocation_params or {}
        meta = metadata or {}
        run.request = {
            "provider": str(meta.get("ls_provider") or params.get("_type") or "langchain"),
            "request_model": str(
                params.get("model") or params.get("model_name") or meta.get("ls_model_name") or ""
            ),
            "input_messages": [message_parts(m) for m in (messages[0] if messages else [])],
            "tool_definitions": tool_definitions(params.get("tools")),
            "request_parameters": {
                k: plain(v) for k, v in params.items() if k not in _NOT_PARAMETERS and v is not None
            },
        }
        self._runs[run_id] = run

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.first_token is None and (token or chunk is not None):
            run.first_token = time.perf_counter()

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        self._conversations.pop(run_id, None)
        if run is None:
            return
        latency = (time.perf_counter() - run.started) * 1000
        generations = [g for batch in response.generations for g in batch][:1]
        message = getattr(generations[0], "message", None) if generations else None
        fields: dict[str, Any] = {k: v for k, v in run.request.items() if v is not None}
        if message is not None:
            meta = getattr(message, "response_metadata", None) or {}
            usage = getattr(message, "usage_metadata", None) or {}
            reason = meta.get("finish_reason") or meta.get("stop_reason")
            shaped = message_parts(message)
            finish = _FINISH.get(reason or "", reason or "stop")
            if any(p["type"] == "tool_call" for p in shaped["parts"]):
                finish = "tool_call"
            fields.update(
                output_messages=[
                    {"role": "assistant", "parts": shaped["parts"], "finish_reason": finish}
                ],
                finish_reasons=[reason] if reason else [],
                finish_reason=reason,
                response_id=meta.get("id"),
                response_model=meta.get("model_name") or meta.get("model"),
                input_tokens=usage.get("input_tokens") or 0,
                output_tokens=usage.get("output_tokens") or 0,
                cache_read_input_tokens=(usage.get("input_token_details") or {}).get("cache_read"),
                reasoning_tokens=(usage.get("output_token_details") or {}).get("reasoning"),
                provider_response=plain(message),
            )
        else:  # a completion model's text
            text = generations[0].text if generations else ""
            fields["output_messages"] = [
                {"role": "assistant", "parts": text_parts(text), "finish_reason": "stop"}
            ]
        if run.first_token is not None:
            fields.update(
                streamed=True, time_to_first_token_ms=(run.first_token - run.started) * 1000
            )
        fields = {k: v for k, v in fields.items() if v is not None}
        safely(
            lambda: self.recorder.llm_call(
                run.conversation_id,
                agent=run.agent,
                latency_ms=latency,
                event_id=event_id(run_id, "llm_call"),
                **fields,
            )
        )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        self._conversations.pop(run_id, None)
        if run is None:
            return
        latency = (time.perf_counter() - run.started) * 1000
        status = getattr(error, "status_code", None)
        message = getattr(error, "message", None)
        request = {k: v for k, v in run.request.items() if v is not None and k != "provider"}
        safely(
            lambda: self.recorder.llm_call_failed(
                run.conversation_id,
                agent=run.agent,
                provider=run.request["provider"],
                error_type=type(error).__name__,
                error_message=message if isinstance(message, str) else str(error),
                status_code=status if isinstance(status, int) else None,
                latency_ms=latency,
                event_id=event_id(run_id, "llm_call_failed"),
                **request,
            )
        )

    # --- tools --------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = _Run(self._conversation(run_id, parent_run_id, metadata), self._agent(metadata))
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        call_id = str(kwargs.get("tool_call_id") or f"call_{run_id.hex}")
        run.tool = (call_id, name)
        self._runs[run_id] = run
        arguments = plain(inputs) if inputs is not None else json_value(input_str)
        safely(
            lambda: self.recorder.tool_call_requested(
                run.conversation_id,
                call_id,
                name,
                arguments,
                agent=run.agent,
                event_id=event_id(run_id, "tool_call_requested"),
            )
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        self._conversations.pop(run_id, None)
        if run is None or run.tool is None:
            return
        call_id, name = run.tool
        content = getattr(output, "content", output)
        result = json_value(_text(content))
        duration = (time.perf_counter() - run.started) * 1000
        safely(
            lambda: self.recorder.tool_call_completed(
                run.conversation_id,
                call_id,
                name,
                result,
                duration_ms=duration,
                agent=run.agent,
                event_id=event_id(run_id, "tool_call_completed"),
            )
        )

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        self._conversations.pop(run_id, None)
        if run is None or run.tool is None:
            return
        call_id, name = run.tool
        duration = (time.perf_counter() - run.started) * 1000
        safely(
            lambda: self.recorder.tool_call_failed(
                run.conversation_id,
                call_id,
                name,
                error_type=type(error).__name__,
                error_message=str(error),
                duration_ms=duration,
                agent=run.agent,
                event_id=event_id(run_id, "tool_call_failed"),
            )
        )

    # --- agents (AgentExecutor) ---------------------------------------------------

    def on_agent_finish(
        self,
        finish: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        output = (getattr(finish, "return_values", None) or {}).get("output")
        if output is None:
            return
        cid = self._conversations.get(run_id) or self._conversation(run_id, parent_run_id, None)
        agent = self.agent or "agent"
        safely(
            lambda: self.recorder.agent_message(
                cid, agent, str(output), event_id=event_id(run_id, "agent_message")
            )
        )
