"""A Ctrl-C while the command is still importing its modules (seconds on a slow machine)
ends it like a Ctrl-C later on: exit 130 and one line, no traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers.cli import clean_environment

# Raises KeyboardInterrupt exactly where a Ctrl-C lands in practice: while the commands
# are imported, after the entry point has started.
_INTERRUPTED_IMPORT = textwrap.dedent(
    """
    import sys

    class CtrlC:
        def find_spec(self, name, path=None, target=None):
            if name == "agentlog.cli":
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, CtrlC())
    sys.argv = ["agentlog", "status"]
    from agentlog.__main__ import run
    run()
    """
)


def test_a_ctrl_c_while_the_commands_load_is_one_line_and_130() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_IMPORT],
        capture_output=True,
        text=True,
        env=clean_environment(None),
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 130
    assert done.stderr.strip().splitlines() == ["interrupted"]
