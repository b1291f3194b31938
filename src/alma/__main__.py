"""The ``alma`` command (also ``python -m alma``).

A command that runs memory designs gets its first sandbox worker spawned here, before the CLI
imports its libraries, so that the worker's start-up overlaps with them.
"""

import sys


def main() -> None:
    from alma.sandbox.launch import start_early

    start_early(sys.argv[1:])
    from alma.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
