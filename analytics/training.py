"""Fine-tuning data from the archive: one example per conversation, filtered, redacted,
validated, split, with the offsets of every example in a side file. Re-runs (the
`reruns` view) are left out unless asked for: they repeat recorded conversations.

Reads the archive only (bring it up to date first: `archiver.archive_once`), so an
export is the same whenever it runs over the same archive.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from agentlog.analytics.redact import Redactor
from agentlog.analytics.sql_guard import one_condition
from agentlog.analytics.trajectory import (
    STEP_COLUMNS,
    WITH_PAYLOAD,
    Trajectory,
    TrajectoryBuilder,
    as_openai,
    as_trl,
    weigh,
)
from agentlog.analytics.validate import problem
from agentlog.analytics.views import Views, open_views, rerun_originals
from agentlog.consumers.fold import fold
from agentlog.consumers.projection import RecordedEvent
from agentlog.consumers.projections.conversations import TABLE as CONVERSATIONS
from agentlog.consumers.projections.conversations import Conversations
from agentlog.consumers.projections.verdicts import DECIDED_BY, NOTHING_DECIDED, verdicts
from agentlog.errors import ExportError
from agentlog.private_files import private_dir, temporary_beside

Form = Literal["openai", "trl"]
# Events done, events in all: how far a long export is.
Progress = Callable[[int, int], None]
_PROGRESS_SECONDS = 0.1
Choice = Literal["include", "exclude"]
# Why a re-run is not an example (`TrainingReport.excluded`).
RERUN = "a re-run"


@dataclass(frozen=True)
class TrainingOptions:
    out: Path
    form: Form = "openai"
    where: str | None = None
    failed_tool_calls: Choice = "include"
    escalated: Choice = "include"
    redact: bool = True
    patterns: tuple[str, ...] = ()
    split: float | None = None
    weight_failed: int | None = None
    threads: int | None = None
    only: frozenset[str] | None = None  # these conversations alone
    # Re-runs (`agentlog replay rerun`) repeat recorded conversations: as examples they
    # would count those conversations twice.
    include_reruns: bool = False


@dataclass
class TrainingReport:
    files: dict[str, Path] = field(default_factory=dict)  # split name -> data file
    provenance: dict[str, Path] = field(default_factory=dict)
    examples: Counter[str] = field(default_factory=Counter)  # split name -> examples
    invalid: list[tuple[str, str]] = field(default_factory=list)  # conversation, why
    excluded: Counter[str] = field(default_factory=Counter)  # why -> conversations
    events: int = 0
    conversations: int = 0
    redactions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / max(self.seconds, 1e-9)


def split_of(conversation_id: str, train_share: float | None) -> str:
    """`train` or `validation`, the same for a conversation on every run and machine."""
    if train_share is None:
        return "all"
    digest = hashlib.sha256(conversation_id.encode()).digest()
    return "train" if int.from_bytes(digest[:8], "big") / 2**64 < train_share else "validation"


def output_paths(out: Path, train_share: float | None) -> dict[str, Path]:
    if train_share is None:
        return {"all": out}
    # `--out train.jsonl --split 0.9`: the training file is the one named, its validation
    # file goes beside it (train.validation.jsonl), so neither is named twice.
    return {"train": out, "validation": out.with_name(f"{out.stem}.validation{out.suffix}")}


def provenance_path(data: Path) -> Path:
    return data.with_name(f"{data.stem}.provenance.jsonl")


def _sql_list(kinds: Collection[str]) -> str:
    return ", ".join(f"'{kind}'" for kind in sorted(kinds))


# Each event's steps (`STEP_COLUMNS`) and, when verdicts are asked for, the rest of each
# event (`_EVENT_COLUMNS`) for those that decide the verdict: one read of the archive
# gives both the messages and the verdict.
_STEPS_QUERY = """
    SELECT event_id, conversation_id, event_type, topic, "partition", "offset", text, tool_call_id,
           tool_name, arguments_json, result_json, error_type, error_message, attempt,
           CASE WHEN event_type IN ({with_payload}) THEN payload_json END AS payload_json
           {event_columns}
    FROM archive_files WHERE decode_error IS NULL {where}
    ORDER BY conversation_id, "partition", "offset", event_id
"""
_EVENT_SQL = """, epoch_us(occurred_at) AS occurred_micros, source_service, source_agent,
           source_version, causation_id, trace_id, span_id"""
# The columns an event is made of, in `RecordedEvent`'s order.
_EVENT_COLUMNS = (
    "event_id",
    "conversation_id",
    "occurred_micros",
    "event_type",
    "payload_json",
    "source_service",
    "source_agent",
    "source_version",
    "causation_id",
    "trace_id",
    "span_id",
    "topic",
    "partition",
    "offset",
)


def trajectories(
    views: Views, only: Collection[str] | None = None, *, with_verdicts: bool = True
) -> Iterator[Trajectory]:
    """Every conversation of the archive (or of `only`) as a trajectory, by id, with the
    verdict of the conversation state (the projector's fold) on it; without it (`verdict`
    None) if not `with_verdicts`, which saves folding the events that decide it."""
    where = _only(views, only)
    query = _STEPS_QUERY.format(
        with_payload=_sql_list({*WITH_PAYLOAD, *DECIDED_BY} if with_verdicts else WITH_PAYLOAD),
        event_columns=_EVENT_SQL if with_verdicts else "",
        where=where,
    )
    reader = views.connection.sql(query).to_arrow_reader(200_000)
    builder: TrajectoryBuilder | None = None
    current = None
    seen: set[str] = set()
    deciding: list[RecordedEvent] = []  # the conversation's events of DECIDED_BY
    for batch in reader:
        columns = [batch.column(name).to_pylist() for name in STEP_COLUMNS]
        ids = batch.column("event_id").to_pylist()
        events = (
            [batch.column(name).to_pylist() for name in _EVENT_COLUMNS] if with_verdicts else None
        )
        for index, row in enumerate(zip(*columns, strict=True)):
            if row[0] != current:
                if builder is not None:
                    yield _finished(builder, deciding if with_verdicts else None)
                current = row[0]
                builder = TrajectoryBuilder(current)
                seen = set()
                deciding = []
            # Each event once: a repeat (produced twice, or a compacted file's part still
            # beside it) holds the same event id.
            event_id = ids[index]
            if event_id in seen:
                continue
            seen.add(event_id)
            builder.add(row)  # type: ignore[union-attr]  # set on the first row
            if events is not None and row[1] in DECIDED_BY:
                deciding.append(_recorded([column[index] for column in events]))
    if builder is not None:
        yield _finished(builder, deciding if with_verdicts else None)


def _finished(builder: TrajectoryBuilder, deciding: list[RecordedEvent] | None) -> Trajectory:
    """The trajectory with the conversation state's verdict (None if not asked for), from
    the conversation's events that decide it (folding only those gives what folding all
    of them gives)."""
    if deciding is None:
        return builder.finish(None)
    found = verdicts(deciding) if deciding else {}
    return builder.finish(found.get(builder.t.conversation_id, NOTHING_DECIDED))


def _recorded(row: Sequence[Any]) -> RecordedEvent:
    """An archived event (its `_EVENT_COLUMNS`) as the fold sees a record of the log."""
    (eid, cid, at, kind, body, service, agent, version, cause, trace, span, *where) = row
    source = {"service": service, "agent": agent, "version": version}
    return RecordedEvent(eid, cid, at, kind, orjson.loads(body), source, cause, trace, span, *where)


def _only(views: Views, only: Collection[str] | None) -> str:
    """The condition (after AND) that keeps the conversations of `only`, or nothing."""
    if only is None:
        return ""
    views.connection.register("_wanted", pa.table({"id": pa.array(sorted(only), pa.string())}))
    return "AND conversation_id IN (SELECT id FROM _wanted)"


def event_count(views: Views, only: Collection[str] | None = None) -> int:
    """How many events `trajectories` will read (a repeated event counted each time)."""
    query = f"SELECT count(*) FROM archive_files WHERE decode_error IS NULL {_only(views, only)}"
    (count,) = views.connection.execute(query).fetchall()[0]
    return int(count)


def conversations_where(views: Views, where: str) -> set[str]:
    """The ids of conversations whose state (the one fold of the `conversations`
    projection over their archived events) meets the SQL condition `where`."""
    table = Conversations.tables[0]
    rows = fold([Conversations()], _recorded_events(views)).changed[CONVERSATIONS].values()
    kinds = {"text": pa.string(), "bigint": pa.int64(), "double": pa.float64()}
    kinds |= {"boolean": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC")}
    kinds["text[]"] = pa.list_(pa.string())
    state = pa.table(
        {
            name: pa.array([row[name] for row in rows], kinds[kind])
            for name, kind in table.columns.items()
        }
    )
    views.connection.register("_folded_conversations", state)
    views.connection.execute(
        "CREATE OR REPLACE TEMP VIEW conversations AS SELECT * FROM _folded_conversations"
    )
    try:
        found = views.connection.execute(
            f"SELECT conversation_id FROM conversations WHERE {one_condition(where)}"
        ).fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        columns = ", ".join(table.columns)
        raise ExportError(f"--where {where!r}: {first} (conversations has {columns})") from None
    return {row[0] for row in found}


def _recorded_events(views: Views) -> Iterator[RecordedEvent]:
    reader = views.connection.sql(
        """SELECT event_id, conversation_id, epoch_us(occurred_at), event_type, payload_json,
                  source_service, source_agent, source_version, causation_id, trace_id,
                  span_id, topic, "partition", "offset"
           FROM events ORDER BY "partition", "offset" """
    ).to_arrow_reader(200_000)
    for batch in reader:
        for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            yield _recorded(row)


class _Outputs:
    """The data and provenance files, written under temporary names and renamed into
    place only when the whole export succeeded."""

    def __init__(self, paths: dict[str, Path], parquet: bool) -> None:
        self.paths = paths
        self.parquet = parquet
        self.lines: dict[str, int] = Counter()
        for p in paths.values():
            if not p.parent.is_dir():  # a typing mistake is not silently created
                raise ExportError(f"{p.parent} does not exist: create it first, or fix --out")
            private_dir(p.parent)
        # Unguessable names made with O_EXCL (mkstemp), 0600: a link planted in the
        # output folder is never followed.
        self.partial = {name: temporary_beside(p) for name, p in paths.items()}
        self.partial_provenance = {
            name: temporary_beside(provenance_path(p)) for name, p in paths.items()
        }
        self.data = {name: open(path, "wb") for name, path in self.partial.items() if not parquet}
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
        self.provenance = {name: open(path, "wb") for name, path in self.partial_provenance.items()}

    def write(self, split: str, example: dict[str, Any], provenance: dict[str, Any]) -> None:
        self.lines[split] += 1
        if self.parquet:
            self.rows[split].append(_parquet_row(example, provenance))
        else:
            self.data[split].write(orjson.dumps(example) + b"\n")
        line = {"line": self.lines[split], "file": self.paths[split].name, **provenance}
        self.provenance[split].write(orjson.dumps(line) + b"\n")

    def commit(self) -> None:
        for handle in [*self.data.values(), *self.provenance.values()]:
            handle.close()
        if self.parquet:
            for name, rows in self.rows.items():
                pq.write_table(_parquet_table(rows), self.partial[name])
        for name, final in self.paths.items():
            os.replace(self.partial[name], final)
            os.replace(self.partial_provenance[name], provenance_path(final))

    def abandon(self) -> None:
        for handle in [*self.data.values(), *self.provenance.values()]:
            handle.close()
        for path in [*self.partial.values(), *self.partial_provenance.values()]:
            path.unlink(missing_ok=True)


def _parquet_row(example: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    # A tool's JSON-schema parameters have no fixed shape: `tools` is JSON text.
    return {
        "conversation_id": provenance["conversation_id"],
        "messages": example["messages"],
        "tools": orjson.dumps(example["tools"]).decode() if "tools" in example else None,
        "parallel_tool_calls": example.get("parallel_tool_calls"),
    }


def _parquet_table(rows: list[dict[str, Any]]) -> pa.Table:
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Messages whose values disagree in type (TRL arguments as objects): JSON text.
        for row in rows:
            row["messages"] = orjson.dumps(row["messages"]).decode()
        return pa.Table.from_pylist(rows)


def export_training(
    archive: Path,
    topic: str,
    options: TrainingOptions,
    *,
    on_progress: Progress | None = None,
) -> TrainingReport:
    """Write the training files; returns what was written, left out and why.
    `on_progress(events done, events in all)` hears how far it is, a few times a second."""
    started = time.perf_counter()
    if options.where is not None:
        one_condition(options.where)  # refused before any file is made
    report = TrainingReport()
    redactor = Redactor(options.patterns) if options.redact else None
    paths = output_paths(options.out, options.split)
    outputs = _Outputs(paths, options.out.suffix == ".parquet")
    convert = as_openai if options.form == "openai" else as_trl
    try:
        with open_views(archive, topic, None, threads=options.threads) as views:
            wanted = None if options.where is None else conversations_where(views, options.where)
            reruns = set() if options.include_reruns else set(rerun_originals(views))
            total = event_count(views, options.only) if on_progress is not None else 0
            told_at = 0.0
            with_verdicts = _asks_the_state(options)
            for trajectory in trajectories(views, options.only, with_verdicts=with_verdicts):
                report.conversations += 1
                report.events += trajectory.events
                if on_progress is not None and time.monotonic() - told_at >= _PROGRESS_SECONDS:
                    told_at = time.monotonic()
                    on_progress(report.events, total)
                why = _left_out(trajectory, wanted, reruns, options)
                if why is not None:
                    report.excluded[why] += 1
                    continue
                if redactor is not None:
                    redactor.messages(trajectory.messages)
                    redactor.tools(trajectory.tools)
                if options.weight_failed is not None:
                    weigh(trajectory, options.weight_failed)
                example = convert(trajectory)
                invalid = problem(example, options.form)
                if invalid is not None:
                    report.invalid.append((trajectory.conversation_id, invalid))
                    continue
                split = split_of(trajectory.conversation_id, options.split)
                outputs.write(split, example, trajectory.provenance())
                report.examples[split] += 1
        outputs.commit()
        if on_progress is not None:
            on_progress(report.events, max(total, report.events))
    except BaseException:
        outputs.abandon()
        raise
    report.files = paths
    report.provenance = {name: provenance_path(p) for name, p in paths.items()}
    if redactor is not None:
        report.redactions = redactor.counts
    report.seconds = time.perf_counter() - started
    return report


def _asks_the_state(options: TrainingOptions) -> bool:
    """Whether the export needs the conversation state's verdict on each conversation."""
    return (
        options.failed_tool_calls == "exclude"
        or options.escalated == "exclude"
        or options.weight_failed is not None
    )


def _left_out(
    trajectory: Trajectory, wanted: set[str] | None, reruns: set[str], options: TrainingOptions
) -> str | None:
    if trajectory.conversation_id in reruns:
        return RERUN
    if wanted is not None and trajectory.conversation_id not in wanted:
        return "--where"
    verdict = trajectory.verdict
    if verdict is None:  # not asked for: the options ask nothing of it
        return None
    if options.failed_tool_calls == "exclude" and verdict.failed_calls:
        return "a tool call failed"
    if options.escalated == "exclude" and verdict.escalated:
        return "escalated"
    return None
