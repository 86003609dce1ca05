"""`agentlog dev up|status|down` manage the embedded broker for every later command."""

from __future__ import annotations

from cli import agentlog


def test_dev_up_status_down_and_commands_find_it(tmp_path) -> None:
    up = agentlog("dev", "up", state_dir=tmp_path)
    assert up.code == 0, up.err
    bootstrap = up.out.strip().splitlines()[-1]
    assert bootstrap.startswith("127.0.0.1:")
    assert "memory only" in up.out
    try:
        again = agentlog("dev", "up", state_dir=tmp_path)
        assert "already running" in again.out and again.out.strip().endswith(bootstrap)
        status = agentlog("dev", "status", state_dir=tmp_path)
        assert status.code == 0 and bootstrap in status.out
        # No --bootstrap and no env: the command uses the running dev broker.
        created = agentlog("topics", "create", "--partitions", "2", state_dir=tmp_path)
        assert created.code == 0, created.err
        assert "agentlog.events: created" in created.out
        described = agentlog("topics", "describe", state_dir=tmp_path)
        assert "agentlog.events: 2 partitions" in described.out
        assert "retention.ms=-1" in described.out
        recreated = agentlog("topics", "create", state_dir=tmp_path)
        assert recreated.out.count(": exists") == 3
    finally:
        down = agentlog("dev", "down", state_dir=tmp_path)
    assert down.code == 0 and "stopped" in down.out
    after = agentlog("dev", "status", state_dir=tmp_path)
    assert after.code == 1 and "agentlog dev up" in after.err


def test_dev_up_on_a_taken_port_fails_clearly(tmp_path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = agentlog("dev", "up", "--port", str(port), state_dir=tmp_path, timeout=60)
    assert run.code == 1
    assert "error: the dev broker" in run.err
