"""Validate requests and resources; turn pydantic's errors into ``INVALID_INPUT`` naming the field.

REST bodies are snake_case (``workflow_config.indextts_config.emotion_alpha``), resources camelCase
(``spec.workflowConfig.indexttsConfig.emotionAlpha``): each error names the field as its writer
spelled it, and says what to change.

Every check runs under the :class:`~tts_api.policy.ValidationPolicy` its caller passes; nothing here
reads the environment (each process reads its policy once, at start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from tts_api.constants import API_GROUP_VERSION, KIND
from tts_api.errors import ErrorCode, TTSError, invalid_input
from tts_api.outputs import OutputRuleError, check_output_free
from tts_api.policy import ValidationPolicy, stored_record_policy
from tts_api.request import WorkflowRequest
from tts_api.resource import ObjectMeta, TTSWorkflow, TTSWorkflowSpec, TTSWorkflowStatus

M = TypeVar("M", bound=BaseModel)

# How many field errors one message lists before "and N more".
MAX_LISTED_ERRORS = 5


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_FRIENDLIER = {
    "missing": "is required",
    "extra_forbidden": "is not a known field; check its spelling against the API reference",
    "model_type": "must be an object",
    "dict_type": "must be an object",
}


def _message(error: ErrorDetails) -> str:
    message = _FRIENDLIER.get(error["type"], error["msg"])
    value = error.get("input")
    if error["type"] not in ("missing", "tts_invalid", "tts_invalid_child") and _short_scalar(value):
        message = f"{message} (got {value!r})"
    return message


def _short_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= 80
    return isinstance(value, int | float | bool) or value is None


def field_errors(exc: ValidationError, *, camel: bool, root: str) -> list[FieldError]:
    """One :class:`FieldError` per pydantic error, the field spelled for its writer."""
    found: list[FieldError] = []
    for error in exc.errors(include_url=False):
        # pydantic's loc holds the keys as the writer spelled them; only a field named by a
        # cross-field rule (snake_case in the rule) is spelled here.
        loc: list[str | int] = list(error["loc"])
        child = (error.get("ctx") or {}).get("field")
        if error["type"] == "tts_invalid_child" and isinstance(child, str):
            loc.extend(to_camel(part) if camel else part for part in child.split("."))
        path = root
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + part
        found.append(FieldError(path or root or "body", _message(error)))
    return found


def invalid_input_from(errors: list[FieldError]) -> TTSError:
    listed = "; ".join(str(e) for e in errors[:MAX_LISTED_ERRORS])
    if len(errors) > MAX_LISTED_ERRORS:
        listed += f"; and {len(errors) - MAX_LISTED_ERRORS} more"
    return TTSError(ErrorCode.INVALID_INPUT, listed, field=errors[0].field if errors else None)


def _validate(model: type[M], data: Any, *, camel: bool, root: str, policy: ValidationPolicy) -> M:
    try:
        return model.model_validate(data, by_alias=camel, by_name=not camel, context={"policy": policy})
    except ValidationError as exc:
        raise invalid_input_from(field_errors(exc, camel=camel, root=root)) from None


def parse_request(body: Any, *, policy: ValidationPolicy) -> WorkflowRequest:
    """Validate a ``POST /v1/workflows`` body (snake_case); raise ``INVALID_INPUT`` naming the field.

    A new workflow's ``output_path`` must also be free where the shared volume is mounted: a file
    there is either not the service's or another workflow's audio, and is never written over.
    """
    request = _validate(WorkflowRequest, body, camel=False, root="", policy=policy)
    config = request.workflow_config.indextts_config
    root = policy.shared_root
    if config is not None and config.output_path and policy.check_disk and root.is_mounted():
        try:
            check_output_free(config.output_path, root.local_path(config.output_path))
        except OutputRuleError as exc:
            raise invalid_input("workflow_config.indextts_config.output_path", str(exc)) from None
    return request


def parse_spec(spec: Any, *, policy: ValidationPolicy) -> TTSWorkflowSpec:
    """Validate a TTSWorkflow ``spec`` (camelCase); raise ``INVALID_INPUT`` naming ``spec.<field>``."""
    return _validate(TTSWorkflowSpec, spec, camel=True, root="spec", policy=policy)


def read_workflow(body: dict[str, Any], *, policy: ValidationPolicy) -> TTSWorkflow:
    """Read a stored TTSWorkflow (an API server's or local mode's record).

    The spec was checked when it was accepted, so it is read without disk checks and against the
    CRD's ceilings (:func:`~tts_api.policy.stored_record_policy`); status and metadata as written.
    A spec that still cannot be read (one made with kubectl that the API server's schema admits and
    the operator refuses, e.g. an output path outside the shared root) reads as None: the workflow is
    still shown, with the status in which the operator says what is wrong.
    """
    try:
        spec: TTSWorkflowSpec | None = parse_spec(body.get("spec"), policy=stored_record_policy(policy))
    except TTSError:
        spec = None
    return _with_spec(body, spec)


def read_workflow_status(body: dict[str, Any]) -> TTSWorkflow:
    """A stored TTSWorkflow's metadata and status only (its spec left unread, as None): what the
    monitoring views need, at a fraction of :func:`read_workflow`'s cost."""
    return _with_spec(body, None)


def _with_spec(body: dict[str, Any], spec: TTSWorkflowSpec | None) -> TTSWorkflow:
    return TTSWorkflow(
        api_version=body.get("apiVersion", API_GROUP_VERSION),
        kind=body.get("kind", KIND),
        metadata=ObjectMeta.model_validate(body.get("metadata") or {}),
        spec=spec,
        status=TTSWorkflowStatus.from_k8s(body.get("status")),
    )
