"""The integration contract as a test suite: what every way of recording an agent
(agentlog's OpenAI and Anthropic wrappers, the Agents SDK processor, the LangChain
handler, and yours) must record of the same conversation.

An integration records a real client library talking to `agentlog.testing.model_server`
(canned answers over HTTP on loopback). For the scripted conversation (the user asks,
the model calls `lookup_invoice`, the tool answers, the model replies) its recording
must replay to the same transcript and export the same training example, ids and
timings aside, as the same conversation recorded by hand with the SDK
(`hand_recording`); two tool calls in one answer stay one assistant turn; a 429 is one
`llm_call_failed` and the caller gets the library's own error; a streamed answer
records its time to first token; and every record on the topic decodes with a reader
that shares nothing with agentlog's (kafka-python and fastavro on the `.avsc` files).

Subclass `IntegrationContract`, set `provider` and `finish_reasons`, and write
`converse` and `rate_limited` with your integration; the test module needs a `settings`
fixture (Settings on a broker and fresh topics: agentlog's own tests have one per
broker engine):

    class TestMyIntegration(IntegrationContract):
        provider = "openai"
        finish_reasons = ("tool_calls", "stop")

        def converse(self, session, model, *, stream=False): ...
        def rate_limited(self, session): ...

Needs pytest and the test extra (kafka-python); agentlog never imports this module.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agentlog.testing is a pytest suite: install pytest to use it (pip install pytest)"
    ) from exc

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archiver import write_records
from agentlog.analytics.columns import RawRecord
from agentlog.analytics.training import TrainingOptions, export_training
from agentlog.producers import Recorder
from agentlog.replay import replay_conversation
from agentlog.replay.transcript import transcript
from agentlog.settings import Settings
from agentlog.testing.model_server import (
    MODEL_PARALLEL,
    MODEL_TOOL,
    SCRIPT,
    ModelServer,
)

__all__ = ["IntegrationContract", "Session", "run_tool"]


@dataclass
class Session:
    """What a scenario runs with: the recorder, the model server, the conversation
    (the integration takes it from its framework's own key, or from
    `recorder.conversation(...)`) and the acting agent's name."""

    recorder: Recorder
    server: ModelServer
    conversation_id: str
    agent: str


def run_tool(name: str, arguments: Any) -> Any:
    """The scripted tools' answers (what agent code would compute)."""
    for tool in (SCRIPT.lookup, SCRIPT.refund):
        if tool.name == name:
            return tool.result
    raise KeyError(f"the script has no tool {name!r}")


def _decoders() -> dict[bytes, Any]:
    """Every released schema, by fingerprint, parsed by fastavro from the .avsc files."""
    from fastavro import parse_schema
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    found = {}
    for folder in resources.files("agentlog.schemas").iterdir():
        avsc = folder / "agentlog.Event.avsc"
        if folder.name.startswith("v") and avsc.is_file():
            parsed = parse_schema(json.loads(avsc.read_text()))
            canonical = to_parsing_canonical_form(parsed)
            found[bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))] = parsed
    return found


def read_independently(settings: Settings, expect: int) -> list[tuple[Any, dict[str, Any]]]:
    """(record, decoded event) for every record of the events topic, read by kafka-python
    and decoded by fastavro alone; a record either cannot decode fails the test."""
    from fastavro import schemaless_reader
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        topic = settings.events_topic
        assignment = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        records: list[Any] = []
        for _ in range(300):  # 300 polls of at most 200 ms: a minute
            if len(records) >= expect:
                break
            records.extend(r for rs in consumer.poll(timeout_ms=200).values() for r in rs)
    finally:
        consumer.close()
    assert len(records) >= expect, f"kafka-python read {len(records)} records of {expect}"
    schemas = _decoders()
    decoded = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        value = record.value
        assert value[:2] == b"\xc3\x01" and value[2:10] in schemas, (
            f"record {record.partition}@{record.offset} is not single-object Avro of a "
            "released schema"
        )
        event = schemaless_reader(
            io.BytesIO(value[10:]), schemas[value[2:10]], return_record_name=True
        )
        decoded.append((record, dict(event)))  # type: ignore[arg-type]
    return decoded


def _payload(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(record name, fields) of a decoded event's payload union."""
    payload = event["payload"]
    if isinstance(payload, tuple):
        return payload[0], payload[1]
    return str(payload.get("-type", "")), payload


_POSITION = re.compile(r"^\s*\S+\s+p\d+@\d+\s+")
_MILLIS = re.compile(r"[\d,]+(\.\d+)? ms\b")


def _comparable(lines: Iterator[str], conversation_id: str) -> list[str]:
    """Transcript lines without the header (offsets, times), each line's time and
    position, the conversation id and durations: what is left must not differ."""
    kept = list(lines)[2:]
    return [
        _MILLIS.sub("<ms>", _POSITION.sub("", line)).replace(conversation_id, "<conversation>")
        for line in kept
    ]


class IntegrationContract:
    """One test per promise. Subclasses: `provider`, `finish_reasons`, `converse` and
    `rate_limited`, and a `settings` fixture in scope."""

    provider: ClassVar[str]
    # The provider's own finish reasons: for a tool call, then for the final answer.
    finish_reasons: ClassVar[tuple[str, str]]
    agent: ClassVar[str] = "billing"

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        """Play the scripted conversation through the integration: ask SCRIPT.question
        offering SCRIPT.tools(); while the model calls tools, run them (`run_tool`) and
        send their results back; stop at its text answer. Agent code that runs tools
        itself records them by hand (`recorder.tool_call(..., tool_call_id=...)`)."""
        raise NotImplementedError

    def rate_limited(self, session: Session) -> BaseException:
        """Make one call of the model `MODEL_RATE_LIMITED` through the integration and
        return the exception the caller got."""
        raise NotImplementedError

    # --- fixtures ----------------------------------------------------------------

    @pytest.fixture
    def server(self) -> Iterator[ModelServer]:
        with ModelServer() as server:
            yield server

    @pytest.fixture
    def recorder(self, settings: Settings) -> Iterator[Recorder]:
        with Recorder(settings, service="contract") as recorder:
            yield recorder

    def session(self, recorder: Recorder, server: ModelServer, name: str) -> Session:
        return Session(recorder, server, f"{name}-{uuid.uuid4().hex[:12]}", self.agent)

    # --- the hand SDK's recording of the scripted conversation --------------------

    def hand_recording(self, recorder: Recorder, conversation_id: str) -> None:
        """The scripted conversation as a careful user records it by hand."""
        call = SCRIPT.lookup
        user = {"role": "user", "parts": [{"type": "text", "content": SCRIPT.question}]}
        asked: dict[str, Any] = {"type": "tool_call", "id": call.call_id, "name": call.name}
        asked["arguments"] = call.arguments
        common: dict[str, Any] = {
            "agent": self.agent,
            "provider": self.provider,
            "request_model": MODEL_TOOL,
            "response_model": MODEL_TOOL,
            "tool_definitions": [{"type": "function", **t} for t in SCRIPT.tools()],
            "input_tokens": SCRIPT.input_tokens,
            "output_tokens": SCRIPT.output_tokens,
            "latency_ms": 1.0,
        }
        recorder.llm_call(
            conversation_id,
            input_messages=[user],
            output_messages=[{"role": "assistant", "parts": [asked], "finish_reason": "tool_call"}],
            finish_reasons=[self.finish_reasons[0]],
            finish_reason=self.finish_reasons[0],
            **common,
        )
        with recorder.conversation(conversation_id):
            with recorder.tool_call(
                call.name, call.arguments, tool_call_id=call.call_id, agent=self.agent
            ) as tool:
                tool.result = call.result
        answered = {"type": "tool_call_response", "id": call.call_id, "response": call.result}
        text = {"type": "text", "content": SCRIPT.answer}
        recorder.llm_call(
            conversation_id,
            input_messages=[
                user,
                {"role": "assistant", "parts": [asked]},
                {"role": "tool", "parts": [answered]},
            ],
            output_messages=[{"role": "assistant", "parts": [text], "finish_reason": "stop"}],
            finish_reasons=[self.finish_reasons[1]],
            finish_reason=self.finish_reasons[1],
            **common,
        )

    # --- helpers -----------------------------------------------------------------

    def _events(self, settings: Settings, expect: int, conversation_id: str) -> list[Any]:
        """(name, payload) of the conversation's events, as the independent reader
        decodes the whole topic (every record of which must decode)."""
        decoded = read_independently(settings, expect)
        return [
            _payload(event) for _, event in decoded if event["conversation_id"] == conversation_id
        ]

    def _example(self, settings: Settings, tmp_path: Path, conversation_id: str) -> Any:
        """The conversation's training example (OpenAI chat form), exported from an
        archive of the records kafka-python read."""
        archive = tmp_path / f"archive-{conversation_id}"
        root = topic_root(archive, settings.events_topic)
        decoded = read_independently(settings, 1)
        for partition in sorted({r.partition for r, _ in decoded}):
            records = [
                RawRecord(r.partition, r.offset, r.timestamp, r.value)
                for r, _ in decoded
                if r.partition == partition
            ]
            write_records(root, settings.events_topic, records)
        out = tmp_path / f"{conversation_id}.jsonl"
        options = TrainingOptions(out=out, only=frozenset({conversation_id}), redact=False)
        report = export_training(archive, settings.events_topic, options)
        assert not report.invalid, report.invalid
        examples = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(examples) == 1, examples
        return examples[0]

    def _record_user_turn(self, session: Session) -> None:
        """The user's message, recorded by the application at its edge (no framework
        records it as an event of its own), before the agent runs."""
        session.recorder.user_message(session.conversation_id, SCRIPT.question)

    # --- the promises --------------------------------------------------------------

    def test_the_scripted_conversation_replays_and_exports_as_the_hand_sdk_records_it(
        self, settings: Settings, recorder: Recorder, server: ModelServer, tmp_path: Path
    ) -> None:
        hand = self.session(recorder, server, "hand")
        self._record_user_turn(hand)
        self.hand_recording(recorder, hand.conversation_id)
        recorded = self.session(recorder, server, "recorded")
        self._record_user_turn(recorded)
        self.converse(recorded, MODEL_TOOL)
        recorder.flush(30)

        by_hand = self._events(settings, 10, hand.conversation_id)
        by_integration = self._events(settings, 10, recorded.conversation_id)
        assert [name for name, _ in by_integration] == [name for name, _ in by_hand]

        def lines(conversation_id: str) -> list[str]:
            replay = replay_conversation(settings, conversation_id, scan=True)
            return _comparable(transcript(replay, verbose=False), conversation_id)

        recorded_lines, hand_lines = lines(recorded.conversation_id), lines(hand.conversation_id)
        assert recorded_lines == hand_lines, "\n".join(
            ["recorded:", *recorded_lines, "by hand:", *hand_lines]
        )
        recorded_example = self._example(settings, tmp_path, recorded.conversation_id)
        hand_example = self._example(settings, tmp_path, hand.conversation_id)
        assert recorded_example == hand_example, f"{recorded_example}\n!=\n{hand_example}"

    def test_parallel_tool_calls_stay_one_assistant_turn(
        self, settings: Settings, recorder: Recorder, server: ModelServer, tmp_path: Path
    ) -> None:
        session = self.session(recorder, server, "parallel")
        self._record_user_turn(session)
        self.converse(session, MODEL_PARALLEL)
        recorder.flush(30)
        events = self._events(settings, 7, session.conversation_id)
        calls = [p for name, p in events if name == "agentlog.LlmCall"]
        assert len(calls) == 2
        first = json.loads(calls[0]["output_messages_json"])
        assert [len(m["parts"]) for m in first] == [2]
        assert [p["id"] for p in first[0]["parts"]] == [
            SCRIPT.lookup.call_id,
            SCRIPT.refund.call_id,
        ]
        example = self._example(settings, tmp_path, session.conversation_id)
        turns = [m for m in example["messages"] if m.get("tool_calls")]
        assert len(turns) == 1
        assert [c["id"] for c in turns[0]["tool_calls"]] == [
            SCRIPT.lookup.call_id,
            SCRIPT.refund.call_id,
        ]
        tools = [m["tool_call_id"] for m in example["messages"] if m["role"] == "tool"]
        assert sorted(tools) == sorted(t.call_id for t in (SCRIPT.lookup, SCRIPT.refund))

    def test_a_429_is_a_failed_llm_call_and_the_caller_gets_the_error(
        self, settings: Settings, recorder: Recorder, server: ModelServer
    ) -> None:
        session = self.session(recorder, server, "limited")
        error = self.rate_limited(session)
        assert getattr(error, "status_code", None) == 429, repr(error)
        assert not type(error).__module__.startswith("agentlog"), "the library's own error"
        recorder.flush(30)
        events = self._events(settings, 1, session.conversation_id)
        assert [name for name, _ in events] == ["agentlog.LlmCallFailed"]
        failed = events[0][1]
        assert failed["status_code"] == 429
        assert failed["error_type"] == type(error).__name__
        assert failed["provider"] == self.provider

    def test_a_streamed_answer_records_its_time_to_first_token(
        self, settings: Settings, recorder: Recorder, server: ModelServer
    ) -> None:
        session = self.session(recorder, server, "streamed")
        self._record_user_turn(session)
        self.converse(session, MODEL_TOOL, stream=True)
        recorder.flush(30)
        events = self._events(settings, 5, session.conversation_id)
        calls = [p for name, p in events if name == "agentlog.LlmCall"]
        assert len(calls) == 2
        for call in calls:
            assert call["streamed"] is True
            first = call["time_to_first_token_ms"]
            assert first is not None and 0 < first <= call["latency_ms"]
        answer = json.loads(calls[1]["output_messages_json"])
        assert answer[0]["parts"] == [{"type": "text", "content": SCRIPT.answer}]
        asked = json.loads(calls[0]["output_messages_json"])[0]["parts"]
        assert asked == [
            {
                "type": "tool_call",
                "id": SCRIPT.lookup.call_id,
                "name": SCRIPT.lookup.name,
                "arguments": SCRIPT.lookup.arguments,
            }
        ]
