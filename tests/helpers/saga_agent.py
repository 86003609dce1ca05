"""A three-step refund saga for the saga tests, run in the test process or as a script
(`python saga_agent.py CONVERSATION SAGA_ID`, a coordinator to SIGKILL). Every action
and compensation appends a line to the file `effects` in SAGA_EFFECTS_DIR, so the tests
see each side effect in every process.

Script environment: AGENTLOG_BOOTSTRAP_SERVERS / AGENTLOG_TOPIC_PREFIX name the log;
SAGA_KILL_AT=STEP makes that step's first attempt SIGKILL its own process (after its
start is on the log); SAGA_KILL_IN_COMPENSATION=STEP the same for a compensation;
SAGA_FAIL_AT=STEP makes that step's action raise; SAGA_TIMEOUT is every step's timeout."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import orjson

from agentlog.consumers.sagas import Saga, Step, StepContext
from agentlog.producers import Recorder
from agentlog.runtime import SagaCoordinator
from agentlog.settings import Settings

STEPS = ("reserve", "charge", "notify")


def _append(directory: Path, line: str) -> None:
    # O_APPEND: one write per line, whole, whichever process writes.
    fd = os.open(directory / "effects", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def effects(directory: Path) -> list[str]:
    path = directory / "effects"
    return path.read_text().splitlines() if path.exists() else []


def refund_saga(
    directory: Path,
    *,
    fail_at: str | None = None,
    hang_at: str | None = None,
    kill_at: str | None = None,
    kill_in_compensation: str | None = None,
    failing_compensation: str | None = None,
    release: threading.Event | None = None,
    timeout: float = 30.0,
) -> Saga:
    """`hang_at`: that step's action waits for `release` (a test sets it when done)."""

    def action(context: StepContext) -> dict[str, object]:
        _append(directory, f"action {context.step} {context.idempotency_key} {context.attempt}")
        if context.step == kill_at and context.attempt == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if context.step == fail_at:
            raise RuntimeError(f"{context.step} refused by the payment provider")
        if context.step == hang_at and release is not None:
            release.wait(120)
        return {"done": context.step, "input": context.input}

    def compensation(context: StepContext) -> None:
        _append(
            directory,
            f"compensation {context.step} {context.idempotency_key} {context.attempt} "
            f"{orjson.dumps(context.output).decode()}",
        )
        if context.step == kill_in_compensation and context.attempt == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if context.step == failing_compensation:
            raise ConnectionError(f"cannot undo {context.step}")

    return Saga(
        "refund",
        [Step(name, action, compensation=compensation, timeout=timeout) for name in STEPS],
    )


def main(conversation_id: str, saga_id: str) -> None:
    settings = Settings()
    saga = refund_saga(
        Path(os.environ["SAGA_EFFECTS_DIR"]),
        fail_at=os.environ.get("SAGA_FAIL_AT"),
        kill_at=os.environ.get("SAGA_KILL_AT"),
        kill_in_compensation=os.environ.get("SAGA_KILL_IN_COMPENSATION"),
        timeout=float(os.environ.get("SAGA_TIMEOUT", "30")),
    )
    with Recorder(settings, service="saga-test") as recorder:
        result = SagaCoordinator(recorder, settings).run(
            saga, conversation_id=conversation_id, saga_id=saga_id, input={"invoice": "INV-7"}
        )
    print(orjson.dumps({"outcome": result.outcome, "resumed": result.resumed}).decode())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
