"""``python -m edge.wifi --config <file>``: the agent without the rest of the ``tourpulse`` CLI.

Same options as ``tourpulse edge wifi``; on a small site box this entry point skips importing
the stream/API packages that the full CLI registers, which keeps the agent's RSS low.
"""

from __future__ import annotations

import argparse
import logging
import sys

from edge.wifi.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.wifi", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
