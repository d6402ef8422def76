"""``indextts-k8s submit``: send a workflow to the gateway and wait for it with a progress bar."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

HELP = "submit a workflow to the gateway and wait for its result with a progress bar"
BAR_WIDTH = 30


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway",
        default=os.environ.get("TTS_GATEWAY_URL", "http://localhost:8788"),
        help="gateway URL (env TTS_GATEWAY_URL; default %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TTS_API_KEY"),
        help="API key, when the gateway requires one (env TTS_API_KEY)",
    )
    parser.add_argument(
        "--task",
        action="append",
        default=None,
        metavar="TASK",
        choices=["generate_speech", "health_check", "get_model_info", "list_voice_presets"],
        help="a task of the chain, in order (repeatable; default generate_speech)",
    )
    parser.add_argument("--text", help="text to speak")
    parser.add_argument("--output-path", help="where the WAV goes, e.g. /share/workflows/output/hello.wav")
    parser.add_argument("--reference-audio", help="voice to clone: a .wav under /share, or a preset name")
    parser.add_argument(
        "--emotion-reference", help="emotion reference: a .wav under /share, or a preset name"
    )
    parser.add_argument("--emotion-alpha", type=float, help="emotion strength, 0 to 1")
    parser.add_argument(
        "--emotion-vector",
        help="8 comma-separated weights: happy,angry,sad,afraid,disgusted,melancholic,surprised,calm",
    )
    parser.add_argument("--emotion-text", help="a description of the emotion")
    parser.add_argument("--use-random", action="store_true", help="sample randomly")
    parser.add_argument("--max-text-tokens-per-segment", type=int, help="text tokens per segment (20-600)")
    parser.add_argument("--download", type=Path, metavar="FILE", help="save the WAV here when done")
    parser.add_argument("--no-wait", action="store_true", help="print the workflow id and return at once")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default %(default)s)")


def indextts_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The workflow API's ``indextts_config`` from the options given (the gateway validates it)."""
    config: dict[str, Any] = {}
    for name in (
        "text",
        "output_path",
        "reference_audio",
        "emotion_reference",
        "emotion_alpha",
        "emotion_text",
        "max_text_tokens_per_segment",
    ):
        value = getattr(args, name)
        if value is not None:
            config[name] = value
    if args.emotion_vector is not None:
        try:
            config["emotion_vector"] = [float(part) for part in args.emotion_vector.split(",")]
        except ValueError:
            raise SystemExit(
                f"--emotion-vector: {args.emotion_vector!r} is not 8 comma-separated numbers"
            ) from None
    if args.use_random:
        config["use_random"] = True
    return config or None


def progress_line(status: dict[str, Any]) -> str:
    """``[#########.....................]  30% indextts.generate_speech running``"""
    percent = max(0, min(100, int(status.get("progress") or 0)))
    filled = percent * BAR_WIDTH // 100
    stage = status.get("current_stage") or "-"
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% {stage} {status.get('status', '?')}"


class ProgressBar:
    """Redraws one line on a terminal; prints a line per change elsewhere (logs, CI)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._last = ""

    def __call__(self, status: dict[str, Any]) -> None:
        line = progress_line(status)
        if line == self._last:
            return
        self._last = line
        if self._out.isatty():
            self._out.write(f"\r{line}")
        else:
            self._out.write(f"{line}\n")
        self._out.flush()

    def close(self) -> None:
        if self._last and self._out.isatty():
            self._out.write("\n")


def run(args: argparse.Namespace) -> int:
    from gateway.client import GatewayError, IndexTTSClient
    from tts_api.constants import TaskName

    chain = [TaskName(f"indextts.{task}") for task in (args.task or ["generate_speech"])]
    bar = ProgressBar(sys.stderr)
    with IndexTTSClient(args.gateway, api_key=args.api_key) as client:
        try:
            workflow_id = client.submit(chain, indextts_config(args))
            if args.no_wait:
                print(workflow_id)
                return 0
            print(f"workflow {workflow_id}", file=sys.stderr)
            result = client.wait(workflow_id, timeout=args.timeout, on_status=bar)
            bar.close()
            print(json.dumps(result, ensure_ascii=False, indent=2))
            if args.download is not None:
                client.download_audio(workflow_id, args.download)
                print(f"saved {args.download}", file=sys.stderr)
        except GatewayError as exc:
            bar.close()
            print(json.dumps(exc.body, ensure_ascii=False, indent=2), file=sys.stderr)
            return 1
        except TimeoutError as exc:
            bar.close()
            print(str(exc), file=sys.stderr)
            return 1
    return 0
