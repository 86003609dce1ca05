"""Reading projected conversations (`agentlog conversations list|show`) without a broker:
a simulated log folded offline into a sink, read back through the queries and the CLI."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.offline_log import fold_log, simulated_log, store

from agentlog.consumers import open_sink
from agentlog.consumers.queries import ConversationFilter, conversation, list_conversations
from agentlog.errors import SinkError


@pytest.fixture(scope="module")
def folded():
    return fold_log(simulated_log(300, seed=8).records)


@pytest.fixture(params=["memory", "duckdb"])
def sink(request, folded, tmp_path: Path):
    url = (
        f"memory:queries-{uuid.uuid4().hex}"
        if request.param == "memory"
        else f"duckdb:{tmp_path / 'q.duckdb'}"
    )
    with open_sink(url) as opened:
        store(opened, folded)
        yield opened


def _all(folded) -> list[dict]:
    return list(folded.changed["agentlog_conversations"].values())


def ids(rows) -> list[str]:
    return [r["conversation_id"] for r in rows]


def test_status_and_outcome_filter_apart_and_together(sink, folded) -> None:
    everything = _all(folded)
    escalated = {r["conversation_id"] for r in everything if r["outcome"] == "escalated"}
    assert escalated  # the simulation escalates some
    everyone = ConversationFilter(limit=None)
    assert len(list_conversations(sink, everyone)) == len(everything)
    found = list_conversations(sink, ConversationFilter(outcome="escalated", limit=None))
    assert set(ids(found)) == escalated
    both = ConversationFilter(status="ended", outcome="escalated", limit=None)
    assert set(ids(list_conversations(sink, both))) == escalated
    assert list_conversations(sink, ConversationFilter(status="active", outcome="escalated")) == []
    ended = list_conversations(sink, ConversationFilter(status="ended", limit=None))
    assert {r["status"] for r in ended} == {"ended"} and len(ended) == len(everything)


def test_agent_time_and_limit_filters_and_the_newest_first(sink, folded) -> None:
    everything = _all(folded)
    newest_first = sorted(everything, key=lambda r: (-r["last_activity"], r["conversation_id"]))
    assert ids(list_conversations(sink, ConversationFilter(limit=7))) == ids(newest_first[:7])
    sales = ConversationFilter(agent="sales", limit=None)
    assert set(ids(list_conversations(sink, sales))) == {
        r["conversation_id"] for r in everything if "sales" in r["agents"]
    }
    middle = sorted(r["last_activity"] for r in everything)[len(everything) // 2]
    since = list_conversations(sink, ConversationFilter(since_micros=middle, limit=None))
    assert set(ids(since)) == {
        r["conversation_id"] for r in everything if r["last_activity"] >= middle
    }
    until = list_conversations(sink, ConversationFilter(until_micros=middle, limit=None))
    assert set(ids(until)) == {
        r["conversation_id"] for r in everything if r["first_activity"] < middle
    }


def test_one_conversation_with_its_tool_calls_in_request_order_and_its_index(sink, folded) -> None:
    row = next(r for r in _all(folded) if r["tool_calls"] >= 2)
    cid = row["conversation_id"]
    found, calls, index = conversation(sink, cid)
    assert found == row
    assert len(calls) >= row["tool_calls"]
    assert [c["requested_at"] for c in calls] == sorted(c["requested_at"] for c in calls)
    assert index == folded.changed["agentlog_conversation_index"][(cid,)]
    assert conversation(sink, "nobody") == (None, [], None)


def test_a_sink_never_projected_into_says_what_to_run(tmp_path: Path) -> None:
    with open_sink(f"duckdb:{tmp_path / 'empty.duckdb'}") as empty:
        with pytest.raises(SinkError, match="run `agentlog project run`"):
            list_conversations(empty, ConversationFilter())


def test_the_cli_lists_by_status_and_outcome(folded, tmp_path: Path) -> None:
    path = tmp_path / "cli.duckdb"
    with open_sink(f"duckdb:{path}") as sink:
        store(sink, folded)
    escalated = sorted(r["conversation_id"] for r in _all(folded) if r["outcome"] == "escalated")
    sink_args = ("--sink", f"duckdb:{path}")
    run = agentlog(
        "conversations",
        "list",
        *sink_args,
        "--status",
        "ended",
        "--outcome",
        "escalated",
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    header, *rows = run.out.strip().splitlines()
    assert header.split()[:3] == ["conversation", "status", "outcome"]
    assert sorted(r.split()[0] for r in rows) == escalated
    assert all(r.split()[1:3] == ["ended", "escalated"] for r in rows)

    shown = agentlog("conversations", "show", escalated[0], *sink_args, state_dir=tmp_path)
    assert shown.code == 0, shown.err
    assert "status           ended" in shown.out and "outcome          escalated" in shown.out

    wrong = agentlog(
        "conversations", "list", *sink_args, "--status", "escalated", state_dir=tmp_path
    )
    assert wrong.code == 2 and "'escalated' is not one of 'active', 'ended'" in wrong.err


def test_the_cli_shows_tool_latency_in_whole_milliseconds(folded, tmp_path: Path) -> None:
    # A recorded duration is a float (0.006391999704646878): shown as replay does, "0 ms".
    path = tmp_path / "cli.duckdb"
    with open_sink(f"duckdb:{path}") as sink:
        store(sink, folded)
    calls = folded.changed["agentlog_tool_calls"].values()
    done = next(c for c in calls if c["status"] == "completed" and c["latency_ms"] % 1)
    cid = done["conversation_id"]
    shown = agentlog("conversations", "show", cid, "--sink", f"duckdb:{path}", state_dir=tmp_path)
    assert shown.code == 0, shown.err
    line = next(t for t in shown.out.splitlines() if f"  tool {done['tool_name']}" in t)
    assert re.search(r" attempts \d+ \d[\d,]* ms  ", line), line
    assert f"{round(done['latency_ms']):,} ms" in shown.out
    assert str(done["latency_ms"]) not in shown.out
