"""``indextts-k8s models``: pull a model from the hub into a models folder, or list what one holds.

``models pull indextts-2 --dir /models`` writes ``/models/indextts-2/`` (the checkpoint, and the
auxiliary models in ``hf_cache/``), the folder ``TTS_WORKER_CHECKPOINT_DIR`` then names.
``models list --dir /models`` says, for each model there can be, whether it is there and sound.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "pull a model from the hub (huggingface_hub: HF_ENDPOINT, HF_TOKEN), or list the models in a folder"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pull = actions.add_parser("pull", help="download a model's files, resuming what a stopped pull left")
    pull.add_argument("name", help="the model, e.g. indextts-2")
    pull.add_argument(
        "--dir", type=Path, required=True, help="the models folder (the model goes in DIR/NAME)"
    )
    listing = actions.add_parser("list", help="which models are in the folder, and whether each is complete")
    listing.add_argument("--dir", type=Path, required=True, help="the models folder")
    listing.add_argument(
        "--quick", action="store_true", help="check that each file is there, not its checksum"
    )


def run(args: argparse.Namespace) -> int:
    from model_store.catalog import CATALOG, UnknownModelError, model_spec
    from model_store.inventory import check_model
    from model_store.pull import ModelPullError, pull_model

    if args.action == "pull":
        try:
            pull_model(model_spec(args.name), args.dir)
        except (UnknownModelError, ModelPullError) as exc:
            print(f"models pull: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(
                "models pull: stopped; finished files are kept, pull again to fetch the rest", file=sys.stderr
            )
            return 130
        return 0
    complete = True
    for name, spec in sorted(CATALOG.items()):
        check = check_model(spec, spec.folder(args.dir), verify=not args.quick)
        present = spec.folder(args.dir).is_dir()
        complete = complete and (check.complete or not present)
        print(f"{name}\t{check.summary()}\t{spec.description}")
    return 0 if complete else 1
