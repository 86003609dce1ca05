"""The decoders of untrusted bytes never fail but with their own error: a short fuzz run
of each in every test run (Hypothesis, random bytes and mutations of the seeds in
tests/fuzz_corpus/). `python tests/fuzz.py` runs the same targets for minutes each,
coverage-guided with atheris where it is installed."""

from __future__ import annotations

import pytest
from helpers.fuzz_targets import TARGETS, corpus, inputs
from hypothesis import HealthCheck, given, settings


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_seed_of_the_corpus_is_read_or_refused(target: str) -> None:
    seeds = corpus(target)
    assert len(seeds) >= 3, (
        f"tests/fuzz_corpus/{target} has no seeds (python tests/fuzz.py --write-corpus)"
    )
    for seed in seeds:
        TARGETS[target](seed)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_short_fuzz_run_finds_nothing(target: str) -> None:
    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(inputs(target))
    def run(data: bytes) -> None:
        TARGETS[target](data)

    run()
