"""What the tests share that is not a fixture: the one bounded wait for a condition and
what each broker engine can do (tests ask for a capability, never for an engine's name).

Its other modules are imported by name (`from helpers.cli import agentlog`): running the
CLI (`cli`), independent readers (`kafka_python_reader`, `independent_fold`), sample
events, the agents, tools and projections the tests hand to the CLI as
`helpers.MODULE:NAME`, and the scripts run as processes (`recording_agent`,
`saga_agent`). `tests/` is on `sys.path` (pytest's rootdir insertion; the CLI's
processes get it on PYTHONPATH), which is how `helpers` is found. The tests themselves
sit in folders named after the parts they prove (core, producers, consumers, replay,
analytics, integrations, runtime, commands, demo, brokers, project).
"""

from helpers.engines import KAFKA, TANSU, Capabilities, capabilities_of
from helpers.waiting import wait_for

__all__ = ["KAFKA", "TANSU", "Capabilities", "capabilities_of", "wait_for"]
