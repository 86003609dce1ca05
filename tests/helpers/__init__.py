"""What the tests share that is not a fixture: the one bounded wait for a condition and
what each broker engine can do (tests ask for a capability, never for an engine's name).

The other helper modules (`cli`, `kafka_python_reader`, `sample_events`, ...) stay beside
the tests for now; `tests/` is on `sys.path` (pytest's rootdir insertion), which is also
how `helpers` is found.
"""

from helpers.engines import KAFKA, TANSU, Capabilities, capabilities_of
from helpers.waiting import wait_for

__all__ = ["KAFKA", "TANSU", "Capabilities", "capabilities_of", "wait_for"]
