"""``python -m inference_pod``: the worker alone, the same as ``indextts-k8s worker``."""

from __future__ import annotations

import argparse
import sys

from inference_pod import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_pod", description=cli.HELP)
    cli.configure(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
