"""Passwords are never printed: not in `project run`'s summary nor `project status`, not
in the `?password=` form, not in a driver's connection error, not in `repr(Settings())`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from helpers.cli import agentlog
from helpers.workloads import record

from agentlog.kafka_config import client_config
from agentlog.secret_redaction import without_secrets
from agentlog.settings import Settings


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://u:p@ss:w@db/x", "postgresql://u:***@db/x"),  # an unescaped @ in it
        (
            "postgres://u@db/x?sslmode=require&password=pw",
            "postgres://u@db/x?sslmode=require&password=***",
        ),
        ("postgresql://db/x?sslpassword=pw&user=u", "postgresql://db/x?sslpassword=***&user=u"),
        ("host=db user=u password='p w\\' x' dbname=x", "host=db user=u password=*** dbname=x"),
        ("sasl.password=hunter2, sasl.username=bob", "sasl.password=***, sasl.username=bob"),
        (
            "https://api.example/v1?access_token=abc&page=2",
            "https://api.example/v1?access_token=***&page=2",
        ),
        ("client_secret=abc x-api-key=def", "client_secret=*** x-api-key=***"),
    ],
)
def test_every_form_of_a_password_is_redacted(text: str, shown: str) -> None:
    assert without_secrets(text) == shown


def test_what_holds_no_secret_is_left_alone() -> None:
    for text in [
        "duckdb:/home/me/.agentlog/projections.duckdb",
        "postgresql://u@db:5432/x?sslmode=require",
        "token_count=5 passive=yes compass=north",
        'FATAL:  password authentication failed for user "u"',
        "https://example.com/a?b=c",
    ]:
        assert without_secrets(text) == text


def test_settings_keep_secrets_out_of_their_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("AGENTLOG_SINK", "postgresql://u:S3cr3t@db/x?password=Qu3ry")
    monkeypatch.setenv("AGENTLOG_SSL_KEY_PASSWORD", "K3yPass")
    monkeypatch.setenv("AGENTLOG_OTLP_TOKEN", "B3arer")
    for settings in (
        Settings(),
        Settings().with_overrides(sink="postgresql://u:Fl4g@db/x", topic_prefix="p."),
    ):
        for shown in (repr(settings), str(settings), repr(settings.model_dump())):
            secrets = {"hunter2", "S3cr3t", "Qu3ry", "Fl4g", "K3yPass", "B3arer"}
            assert not secrets & set(_words(shown)), shown
        assert "***" in settings.sink_shown and "@db/x" in settings.sink_shown
        # ... while the clients and sinks still get them.
        config = client_config(settings.with_overrides(bootstrap_servers="b:9092"))
        assert config["sasl.password"] == "hunter2"
        assert config["ssl.key.password"] == "K3yPass"
    assert Settings().sink_url == "postgresql://u:S3cr3t@db/x?password=Qu3ry"


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]


def test_a_failed_connection_names_the_sink_without_its_password(tmp_path: Path) -> None:
    for url in (
        "postgresql://u:S3cr3t@127.0.0.1:1/x",
        "postgresql://u@127.0.0.1:1/x?password=S3cr3t&sslpassword=S3cr3t",
        "postgresq://u:S3cr3t@127.0.0.1:1/x",  # a misspelt scheme is quoted back
    ):
        run = agentlog("sql", "SELECT 1", "--sink", url, state_dir=tmp_path)
        assert run.code == 1, run.out
        assert "S3cr3t" not in run.out + run.err, run.err
        assert "127.0.0.1:1/x" in run.err.splitlines()[-1], run.err


def _with_password(url: str, secret: str) -> tuple[str, str]:
    """The URL with a password in its user info (the test server trusts whoever
    connects, so any will do), and the password that must not be printed."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username}:{secret}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), secret


def test_project_run_and_status_print_the_sink_without_its_password(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    record(settings, 3)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    in_user_info, secret = _with_password(postgres_url, "S3cr3t-u")
    in_query = f"{postgres_url}&password={secret}"  # the fixture's URL has a query
    for url in (in_user_info, in_query):
        run = agentlog(*base, "project", "run", "--once", "--sink", url, state_dir=tmp_path)
        assert run.code == 0, run.err
        status = agentlog(*base, "project", "status", "--sink", url, state_dir=tmp_path)
        assert status.code == 0, status.err
        for printed in (run.out + run.err, status.out + status.err):
            assert secret not in printed, printed
            assert ":***@" in printed or "password=***" in printed, printed
