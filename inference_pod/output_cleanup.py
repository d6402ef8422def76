"""Deleting a deleted workflow's audio: the worker's side of :mod:`tts_api.output_deletion`."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from inference_pod.audio_output import sync_folder
from tts_api.messages import MessageError
from tts_api.output_deletion import DeleteOutput, decode_deletion
from tts_api.outputs import read_mark
from tts_api.shared_paths import SharedPathError, SharedRoot

log = logging.getLogger(__name__)


def delete_output(root: SharedRoot, request: DeleteOutput) -> str:
    """Delete the file if its mark names the workflow; say what was done (for the log)."""
    try:
        local = root.local_path(request.output_path)
    except SharedPathError as exc:
        return f"kept: {exc}"
    try:
        mark = read_mark(local)
    except FileNotFoundError:
        return "already gone"
    except OSError as exc:
        return f"kept: cannot read it ({exc.strerror or exc})"
    if mark is None or mark.workflow_uid != request.workflow.uid:
        owner = mark.owner() if mark is not None else "no workflow of this service"
        return f"kept: it holds the audio of {owner}"
    try:
        local.unlink()
    except FileNotFoundError:
        return "already gone"
    except OSError as exc:
        return f"kept: cannot delete it ({exc.strerror or exc})"
    sync_folder(local.parent)
    return "deleted"


async def handle_deletion(message: Msg, root: SharedRoot) -> None:
    """One request from the work queue: carried out (or found moot) and acknowledged, never redelivered."""
    try:
        request = decode_deletion(message.data)
    except MessageError as exc:
        log.warning("dropping an unreadable output deletion: %s", exc)
        await message.term()
        return
    outcome = await asyncio.to_thread(delete_output, root, request)
    log.info(
        "audio %s of deleted workflow %s/%s: %s",
        request.output_path,
        request.workflow.namespace,
        request.workflow.name,
        outcome,
        extra={"workflow": request.workflow.name, "workflow_uid": request.workflow.uid},
    )
    await message.ack_sync()
