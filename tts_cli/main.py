"""The one console entry point, ``indextts-k8s``, and its subcommands.

Each subcommand is a module with ``HELP``, ``configure(parser)`` and ``run(args) -> int``; it wires
one process. Those modules import their heavy dependencies inside ``run``, so that ``--help`` and
the other subcommands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> module implementing it
SUBCOMMANDS: dict[str, str] = {
    "crd": "tts_cli.crd_command",
    "gateway": "gateway.cli",
    "local": "local_mode.cli",
    "models": "tts_cli.models_command",
    "submit": "tts_cli.submit_command",
    "worker": "inference_pod.cli",
    "operator": "tts_operator.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="indextts-k8s",
        description="IndexTTS2 text-to-speech on Kubernetes: "
        "TTSWorkflow resources, operator, workers, gateway.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
