"""The decoders of untrusted bytes never fail but with their own error: a short fuzz run
of each in every test run (Hypothesis, random bytes and mutations of the seeds in
tests/fuzz_corpus/). `python tests/fuzz.py` runs the same targets for minutes each,
coverage-guided with atheris where it is installed."""

from __future__ import annotations

import pytest
from helpers.fuzz_targets import TARGETS, corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def inputs(target: str) -> st.SearchStrategy[bytes]:
    """Random bytes, and seeds with bytes flipped, cut, spliced or repeated."""
    seeds = corpus(target)
    if not seeds:
        return st.binary(max_size=4096)

    def mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(seed)
        for kind, where, byte in edits:
            at = where % (len(data) + 1)
            if kind == 0 and data:
                data[at % len(data)] = byte
            elif kind == 1:
                data.insert(at, byte)
            elif kind == 2:
                del data[at : at + 1 + byte % 8]
            elif kind == 3:
                data[at:at] = data[at : at + 1 + byte] * (1 + byte % 4)
            else:
                data[at:] = b""
        return bytes(data)

    edits = st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8
    )
    return st.one_of(
        st.binary(max_size=4096),
        st.builds(mutate, st.sampled_from(seeds), edits),
    )


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
