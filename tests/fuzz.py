"""Fuzz the decoders of untrusted bytes for minutes per target.

    python tests/fuzz.py                      # 10 minutes per target, every target
    python tests/fuzz.py --minutes 1 codec    # one target
    python tests/fuzz.py --write-corpus       # (re)write the seeds in tests/fuzz_corpus/

With atheris installed (`pip install -e '.[fuzz]'`) each target runs coverage-guided
(libFuzzer) in a process of its own, from the seeds in tests/fuzz_corpus/<target>/,
with a 10 s bound per input (a hang) and 2 GB of memory (unbounded allocation); inputs
that reach new code are kept in a scratch folder (`--work`), never in the checked-in
corpus. Without it, Hypothesis generates inputs for the same time. Each target's line
says how many inputs ran and what was found; the exit status is non-zero on a finding.
The targets are in tests/helpers/fuzz_targets.py; tests/project/test_fuzz.py runs them
briefly in every test run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

TARGET_NAMES = ("codec", "claim_check", "importer", "dead_letters")


def main() -> int:
    if sys.argv[1:2] == ["--atheris-child"]:  # libFuzzer's own arguments follow
        return _atheris_child(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(TARGET_NAMES)} (default all)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--engine", choices=["atheris", "hypothesis"], default=None)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (kept)")
    parser.add_argument("--write-corpus", action="store_true")
    args, rest = parser.parse_known_args()
    if args.write_corpus:
        write_corpus()
        return 0
    unknown = set(args.targets) - set(TARGET_NAMES)
    if unknown or rest:
        parser.error(f"unknown targets or options: {', '.join([*sorted(unknown), *rest])}")
    engine = args.engine or ("atheris" if _has_atheris() else "hypothesis")
    work = args.work or Path(tempfile.mkdtemp(prefix="agentlog-fuzz-"))
    failed = False
    for target in args.targets or TARGET_NAMES:
        run = _atheris if engine == "atheris" else _hypothesis
        result = run(target, args.minutes * 60, work / target)
        print(json.dumps({"target": target, "engine": engine, **result}), flush=True)
        failed = failed or bool(result["findings"])
    return 1 if failed else 0


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# -- atheris: coverage-guided, one process per target ------------------------------------


def _atheris(target: str, seconds: float, work: Path) -> dict[str, object]:
    found = work / "new"
    found.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        __file__,
        "--atheris-child",
        target,
        f"-max_total_time={int(seconds)}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-malloc_limit_mb=1024",
        "-max_len=65536",
        "-print_final_stats=1",
        f"-artifact_prefix={work}/",
        str(found),
        str(TESTS / "fuzz_corpus" / target),
    ]
    started = time.monotonic()
    log = work / "libfuzzer.log"
    with log.open("w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    coverage = re.findall(r"cov: (\d+)", text)
    artifacts = sorted(
        p.name for p in work.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))
    )
    return {
        "executions": int(runs[-1]) if runs else None,
        "seconds": round(time.monotonic() - started),
        "coverage": int(coverage[-1]) if coverage else None,
        "new_inputs": len(list(found.iterdir())),
        "findings": artifacts if (code != 0 or artifacts) else [],
        "exit": code,
        "log": str(log),
    }


def _atheris_child(target: str, libfuzzer_args: list[str]) -> int:
    import atheris

    with atheris.instrument_imports(include=["agentlog", "helpers.fuzz_targets"]):
        from helpers import fuzz_targets
    function = fuzz_targets.TARGETS[target]
    function(b"")  # build the fixtures and the codec
    # The codec's decoders are generated (exec): instrument them where they live.
    generated = fuzz_targets._current_codec().decode.__globals__
    for name, value in list(generated.items()):
        if callable(value) and getattr(value, "__code__", None) is not None:
            generated[name] = atheris.instrument_func(value)
    atheris.Setup([sys.argv[0], *libfuzzer_args], function)
    atheris.Fuzz()
    return 0


# -- Hypothesis: random and mutated seeds, for the same time -----------------------------


def _hypothesis(target: str, seconds: float, work: Path) -> dict[str, object]:
    import traceback

    from helpers import fuzz_targets
    from helpers.fuzz_targets import inputs
    from hypothesis import HealthCheck, given, settings

    function = fuzz_targets.TARGETS[target]
    count = 0
    findings: list[str] = []
    deadline = time.monotonic() + seconds

    @settings(
        max_examples=2_000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(target))
    def once(data: bytes) -> None:
        nonlocal count
        count += 1
        function(data)

    work.mkdir(parents=True, exist_ok=True)
    while time.monotonic() < deadline:
        try:
            once()
        except Exception:
            findings.append(traceback.format_exc(limit=-3))
            (work / f"finding-{len(findings)}.txt").write_text(findings[-1])
            if len(findings) >= 5:
                break
    return {"executions": count, "seconds": round(seconds), "findings": findings}


# -- the seeds ---------------------------------------------------------------------------


def write_corpus() -> None:
    """Seeds a fuzzer starts from: real records, references, lines and headers."""
    for target, seeds in _seeds().items():
        folder = TESTS / "fuzz_corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds")


def _seeds() -> dict[str, dict[str, bytes]]:
    import struct

    from helpers.chat_conversations import CONVERSATIONS
    from helpers.fuzz_targets import _HEADER_NAMES
    from helpers.sample_events import sample_events

    from agentlog.consumers import dead_letters as dl
    from agentlog.serde import encode_event

    codec = {}
    for samples in sorted((TESTS / "samples").glob("v*.hex")):
        version = samples.stem[1:]
        lines = samples.read_text().splitlines()
        for n, line in enumerate(x for x in lines if x and not x.startswith("#")):
            record = bytes.fromhex(line)
            # The body alone: the target puts each version's header before it.
            codec[f"v{version}-{n:02d}"] = record[10:]
    codec["whole-record"] = encode_event(sample_events()[0])

    def chunk(data: bytes) -> bytes:
        return (
            bytes([len(data)]) + data
            if len(data) < 255
            else b"\xff" + struct.pack(">H", len(data)) + data
        )

    claim = {
        # choice (digest index), form, tail, size mode, size byte (128: exact), payload type
        "good": bytes([0, 0]) + chunk(b"") + bytes([0, 128]) + chunk(b"agentlog.UserMessage"),
        "good-legacy-file": bytes([0, 1]) + chunk(b"") + bytes([0, 128]) + chunk(b""),
        "fifo": bytes([1, 0]) + chunk(b"") + bytes([0, 128]) + chunk(b""),
        "link-out": bytes([2, 0]) + chunk(b"") + bytes([0, 128]) + chunk(b""),
        "directory": bytes([3, 0]) + chunk(b"") + bytes([0, 128]) + chunk(b""),
        "missing": bytes([4, 0]) + chunk(b"") + bytes([0, 128]) + chunk(b""),
        "dev-zero": bytes([0, 2])
        + chunk(b"file:///dev/zero")
        + bytes([1])
        + struct.pack("<q", 100000),
        "traversal": bytes([0, 3]) + chunk(b"/../../../../etc/shadow") + bytes([0, 127]),
        "huge-size": bytes([0, 0]) + chunk(b"") + bytes([1]) + struct.pack("<q", 1 << 62),
        # Found by fuzzing: a file: reference urllib cannot split ("Invalid IPv6 URL").
        "found-invalid-ipv6-url": bytes([0, 2]) + chunk(b"file://[/") + bytes([0, 128, 0]),
        "own-digest": bytes([250]) + chunk(b"a" * 64) + bytes([0]) + chunk(b"") + bytes([0, 128]),
    }
    imports = {
        f"conversation-{n}": (json.dumps(c) + "\n").encode() for n, c in enumerate(CONVERSATIONS)
    }
    imports["all-three"] = b"".join(imports.values())
    imports["with-id"] = json.dumps({"conversation_id": "c-1", **CONVERSATIONS[2]}).encode()
    imports["not-json"] = b'{"messages": [\n'

    def header(name: str, value: bytes | None) -> bytes:
        index = _HEADER_NAMES.index(name)
        pick = index if index % 17 else index + len(_HEADER_NAMES) * 2  # never the None pick
        return bytes([pick]) + chunk(value or b"")

    def record(headers: list[tuple[str, bytes]], key: bytes, value: bytes) -> bytes:
        return (
            bytes([len(headers)])
            + b"".join(header(n, v) for n, v in headers)
            + bytes([1])
            + struct.pack("<q", 7)
            + chunk(key)
            + chunk(value)
        )

    letter = [
        (dl.DEAD_LETTER_ID, b"agentlog.events/0/7"),
        (dl.ORIGIN_TOPIC, b"agentlog.events"),
        (dl.ORIGIN_PARTITION, b"0"),
        (dl.ORIGIN_OFFSET, b"7"),
        (dl.ERROR, b"cannot decode record"),
        (dl.CONSUMER_GROUP, b"g"),
        (dl.CONSUMER_KIND, b"trigger"),
        (dl.CONVERSATION, b"conv-1"),
        (dl.ATTEMPTS, b"3"),
    ]
    parked = [(dl.PARKED_BEHIND, b"agentlog.events/0/7"), (dl.CONSUMER_GROUP, b"g")]
    control = [
        (dl.ACTION, b"redriven"),
        (dl.DEAD_LETTER_ID, b"agentlog.events/0/7"),
        (dl.CONSUMER_GROUP, b"g"),
    ]
    letters = {
        "letter": bytes([0]) + record(letter, b"conv-1", b"value"),
        "letter-parked-control": bytes([2])
        + record(letter, b"conv-1", b"v")
        + record(parked, b"conv-1", b"later")
        + record(control, b"conv-1", b""),
        "parked-first": bytes([1]) + record(parked, b"conv-1", b"") + record(letter, b"k", b"v"),
    }
    return {"codec": codec, "claim_check": claim, "importer": imports, "dead_letters": letters}


if __name__ == "__main__":
    sys.exit(main())
