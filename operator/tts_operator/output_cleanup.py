"""When a workflow is deleted, queue deleting its audio for the inference pods (they hold the share)."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext

from tts_api.output_deletion import OUTPUT_DELETION_SUBJECT, deletion_for, encode_deletion
from tts_api.policy import ValidationPolicy
from tts_operator.reconcile import Workflow

log = logging.getLogger(__name__)


async def request_output_deletion(js: JetStreamContext, workflow: Workflow, policy: ValidationPolicy) -> None:
    """Queue the deletion of ``workflow``'s audio (``TTS_DELETE_OUTPUTS``); raises if NATS refuses, so
    that the caller's deletion is retried rather than the audio forgotten."""
    if not policy.delete_outputs:
        return
    result = workflow.status.result
    request = deletion_for(workflow.ref, workflow.spec, result.output_path if result else None)
    if request is None:
        return
    await js.publish(
        OUTPUT_DELETION_SUBJECT, encode_deletion(request), headers={"Nats-Msg-Id": request.message_id}
    )
    log.info(
        "queued the deletion of %s with %s/%s",
        request.output_path,
        workflow.ref.namespace,
        workflow.ref.name,
    )
