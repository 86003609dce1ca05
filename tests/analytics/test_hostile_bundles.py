"""`agentlog export verify` reads a bundle someone handed over: a file from outside, not
trusted. A manifest of the wrong shape is one line and exit 1 (never an internal error),
names and fields from the bundle are shown with their control characters visible, a
link is reported (never followed), and a zipped member is hashed as a stream (a member
that inflates to far more than its size is never held whole)."""

from __future__ import annotations

import json
import re
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, simulated_log

from agentlog.analytics.compliance import ComplianceRequest, verify_bundle
from agentlog.runtime import export_compliance

RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundles")
    log = simulated_log(2, seed=3)
    archive_offline(log, folder / "archive")
    first = sorted({r.key.decode() for r in log.records})[0]
    export_compliance(
        folder / "archive", TOPIC, ComplianceRequest(conversations=(first,)), folder / "good"
    )
    return folder / "good"


def _copy(made: Path, to: Path) -> Path:
    for path in made.rglob("*"):
        if path.is_file():
            target = to / path.relative_to(made)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return to


def _with_manifest(made: Path, to: Path, change) -> Path:
    bundle = _copy(made, to)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps(change(manifest)))
    return bundle


@pytest.mark.parametrize(
    "change",
    [
        lambda m: [m],  # not an object
        lambda m: {**m, "files": sorted(m["files"])},  # a list of names
        lambda m: {**m, "files": {name: 5 for name in m["files"]}},
        lambda m: {**m, "files": {n: {"sha256": 5, "bytes": "a"} for n in m["files"]}},
        lambda m: {**m, "files": {n: {"bytes": e["bytes"]} for n, e in m["files"].items()}},
        lambda m: {**m, "request": "not an object"},
        lambda m: {**m, "counts": ["no"]},
    ],
    ids=["list", "files-list", "entry-int", "entry-types", "entry-no-hash", "request", "counts"],
)
def test_a_manifest_of_the_wrong_shape_is_one_line_not_an_internal_error(
    made: Path, tmp_path: Path, change
) -> None:
    bundle = _with_manifest(made, tmp_path / "b", change)
    run = agentlog("export", "verify", str(bundle), state_dir=tmp_path)
    assert run.code == 1, run.out
    error = run.err.strip().splitlines()[-1]
    assert "builtins." not in run.err, run.err
    assert error.startswith("error: ") and "manifest.json is not a bundle manifest" in error, error


def test_names_and_fields_of_a_bundle_are_shown_visibly(made: Path, tmp_path: Path) -> None:
    title = "\x1b]0;TITLE\x07\x1b[2K"
    bundle = _with_manifest(
        made,
        tmp_path / "b",
        lambda m: {**m, "request": {**m["request"], "requested_by": f"auditor{title}"}},
    )
    good = agentlog("export", "verify", str(bundle), state_dir=tmp_path)
    assert good.code == 0, good.err
    assert not RAW.search(good.out) and "auditor␛]0;TITLE␇␛[2K" in good.out, good.out
    (bundle / f"added{title}\r\nforged: ok").write_text("x")
    bad = agentlog("export", "verify", str(bundle), state_dir=tmp_path)
    assert bad.code == 1
    assert not RAW.search(bad.err), repr(bad.err)
    assert "added␛]0;TITLE␇␛[2K␍␊forged: ok: not in the manifest" in bad.err
    assert not any(line.startswith("forged") for line in bad.err.splitlines())


def test_a_link_in_a_bundle_is_reported_not_followed(made: Path, tmp_path: Path) -> None:
    bundle = _copy(made, tmp_path / "b")
    listed = sorted(json.loads((bundle / "manifest.json").read_text())["files"])[0]
    outside = tmp_path / "outside"
    outside.write_bytes((bundle / listed).read_bytes())  # even the same bytes
    (bundle / listed).unlink()
    (bundle / listed).symlink_to(outside)
    checked = verify_bundle(bundle)
    assert checked.problems == [f"{listed}: a link, not a file of the bundle"]


def test_a_zipped_member_is_hashed_as_a_stream(made: Path, tmp_path: Path) -> None:
    """64 MB of zeros inflate from a few kB: verify holds a small part of it at a time."""
    zipped = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(made.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(made).as_posix())
        with bundle.open("zeros.bin", "w") as member:
            chunk = bytes(1 << 20)
            for _ in range(64):
                member.write(chunk)
    assert zipped.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        checked = verify_bundle(zipped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checked.problems == ["zeros.bin: not in the manifest"]
    assert peak < 16 << 20, f"verify held {peak:,} bytes at once"


def test_an_oversized_manifest_is_refused_unread(
    made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentlog.errors import ExportError

    monkeypatch.setattr("agentlog.analytics.compliance.MANIFEST_MAX_BYTES", 100)
    with pytest.raises(ExportError, match="manifest.json is over 100 bytes"):
        verify_bundle(made)
