"""``python -m edge.wifi --config <file>``: the agent without the rest of the ``tourpulse`` CLI.

Same options as ``tourpulse edge wifi``; on a small site box this entry point skips importing
the stream/API packages that the full CLI registers, which keeps the agent's RSS low.
"""

from __future__ import annotations

import argparse
import logging
import sys

# paho-mqtt imports dnspython when it is installed (only for ``connect_srv``, which the
# agent never calls): ~5 MB of RSS. It is there when the central extras (WebRTC) share the
# environment; a None entry makes paho's guarded import fail as if it were absent.
sys.modules.setdefault("dns", None)  # type: ignore[arg-type]

from edge.wifi.cli import add_arguments, run  # noqa: E402


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
