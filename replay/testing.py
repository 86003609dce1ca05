"""A recorded conversation as a regression test:

def test_billing_agent_still_does_what_it_did(settings):
    assert_rerun(settings, "conv-42", billing_agent)              # no divergence
    assert_rerun(settings, "conv-42", stricter_agent, expect="different_arguments")
"""

from agentlog.replay._testing import (
    assert_rerun,
)

__all__ = [
    "assert_rerun",
]
