"""The `agentlog` command line. Every failure is one line on stderr and a non-zero exit;
`--traceback` (or AGENTLOG_DEBUG=1) shows the Python traceback above that line.

`main()` runs it (the `agentlog` script, `python -m agentlog`); `cli` is its click group.
"""

from agentlog.cli._app import cli
from agentlog.cli._main import main

__all__ = ["cli", "main"]
