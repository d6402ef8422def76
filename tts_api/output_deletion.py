"""Deleting a workflow's audio with it: the request the operator queues and an inference pod carries out.

The operator may not mount the shared volume (the chart gives it none); the inference pods do. So when
a workflow is deleted (by a client, or because its time to live ran out) and ``TTS_DELETE_OUTPUTS``
is on, the operator puts a :class:`DeleteOutput` on the jobs work queue, where exactly one worker
takes it, and it waits there until one does. That worker deletes the file only if its mark names the
deleted workflow (:mod:`tts_api.outputs`): a path another workflow has written since is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tts_api.messages import MESSAGE_VERSION, MessageError, WorkflowRef
from tts_api.nats_names import JOBS_SUBJECT_PREFIX

# On the jobs work queue (its subjects are tts.jobs.>), beside the models' subjects
# (tts.jobs.<model>.<task>, one token longer), read by every worker through one consumer.
OUTPUT_DELETION_SUBJECT = f"{JOBS_SUBJECT_PREFIX}.delete-output"
OUTPUT_CLEANUP_CONSUMER = "tts-output-cleanup"


class DeleteOutput(BaseModel):
    """Delete the audio ``workflow`` wrote at ``output_path``, if the file there is still its own."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = MESSAGE_VERSION
    kind: Literal["delete_output"] = "delete_output"
    workflow: WorkflowRef
    output_path: str = Field(min_length=1)

    @property
    def message_id(self) -> str:
        """``Nats-Msg-Id``: one request per workflow, however often its deletion is handled."""
        return f"{self.workflow.uid}/delete-output"


def deletion_for(ref: WorkflowRef, spec: Mapping[str, Any], result_path: str | None) -> DeleteOutput | None:
    """The request for a deleted workflow's audio: where it was written, else where it would be."""
    config = (spec.get("workflowConfig") or {}).get("indexttsConfig") or {}
    path = result_path or config.get("outputPath")
    if not isinstance(path, str) or not path:
        return None
    return DeleteOutput(workflow=ref, output_path=path)


def encode_deletion(request: DeleteOutput) -> bytes:
    return request.model_dump_json(exclude_none=True).encode()


def decode_deletion(data: bytes) -> DeleteOutput:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not a JSON message: {exc}") from None
    if not isinstance(raw, dict) or raw.get("version") != MESSAGE_VERSION:
        raise MessageError(
            f"output deletion version {raw.get('version') if isinstance(raw, dict) else None!r} is not "
            f"supported (this build reads version {MESSAGE_VERSION})"
        )
    try:
        return DeleteOutput.model_validate(raw)
    except ValidationError as exc:
        raise MessageError(f"bad delete_output message: {exc.errors(include_url=False)[0]['msg']}") from None
