"""`python -m agentlog` and the `agentlog` command.

Importing the commands takes a few seconds on a slow machine; a Ctrl-C meanwhile ends
the command with 130 and one line, like a Ctrl-C later on, never with a traceback.
"""

import sys


def run() -> None:
    try:
        from agentlog.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
