"""The one console entry point, ``indextts-k8s``, and its subcommands.

Each subcommand wires one process; the components themselves live in their own packages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _crd(args: argparse.Namespace) -> int:
    from tts_api.crd import CRD_FILE, render_crd

    text = render_crd()
    if args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date; run `indextts-k8s crd -o {path}`", file=sys.stderr)
            return 1
        print(f"{path} matches the models")
        return 0
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    del CRD_FILE
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="indextts-k8s",
        description="IndexTTS2 text-to-speech on Kubernetes: "
        "TTSWorkflow resources, operator, workers, gateway.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crd = commands.add_parser("crd", help="print the TTSWorkflow CRD generated from the API models")
    target = crd.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", metavar="FILE", help="write the CRD to FILE instead of stdout")
    target.add_argument("--check", metavar="FILE", help="exit 1 when FILE differs from the generated CRD")
    crd.set_defaults(run=_crd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
