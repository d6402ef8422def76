"""``indextts-k8s crd``: print, write or check the CRD generated from the API models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tts_api.crd import CRD_FILE, render_crd, render_voice_crd

HELP = "print the TTSWorkflow (or TTSVoice) CRD generated from the API models"
RENDERERS = {"workflow": render_crd, "voice": render_voice_crd}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", choices=sorted(RENDERERS), default="workflow", help="which CRD: TTSWorkflow or TTSVoice"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", metavar="FILE", help=f"write the CRD to FILE (e.g. {CRD_FILE})")
    target.add_argument("--check", metavar="FILE", help="exit 1 when FILE differs from the generated CRD")


def run(args: argparse.Namespace) -> int:
    text = RENDERERS[args.kind]()
    if args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(
                f"{path} is out of date; run `indextts-k8s crd --kind {args.kind} -o {path}`", file=sys.stderr
            )
            return 1
        print(f"{path} matches the models")
        return 0
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    return 0
