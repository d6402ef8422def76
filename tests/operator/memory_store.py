"""An in-memory :class:`~tts_operator.store.WorkflowStore` for runner tests: records every call."""

from __future__ import annotations

from typing import Any, Literal

from tts_api.messages import WorkflowRef
from tts_operator.reconcile import Workflow
from tts_operator.runner import merge_patch
from tts_operator.store import WorkflowGoneError, workflow_from_body


def apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as an API server applies it."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge_patch(result[key], value)
        else:
            result[key] = value
    return result


class MemoryStore:
    def __init__(self) -> None:
        self.bodies: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.fail_patches = False

    def add(self, name: str, spec: dict[str, Any], namespace: str = "default") -> Workflow:
        body = {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, "spec": spec}
        self.bodies[(namespace, name)] = body
        return workflow_from_body(body)

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        status: dict[str, Any] = self.bodies[(namespace, name)].get("status", {})
        return status

    async def get(self, namespace: str | None, name: str) -> Workflow | None:
        body = self.bodies.get((namespace, name))
        return workflow_from_body(body) if body else None

    async def list(self) -> list[Workflow]:
        return [workflow_from_body(body) for body in self.bodies.values()]

    async def patch_status(self, ref: WorkflowRef, patch: dict[str, Any]) -> None:
        if self.fail_patches:
            raise ConnectionError("the API server is unreachable (test)")
        key = (ref.namespace, ref.name)
        if key not in self.bodies:
            raise WorkflowGoneError(ref.name)
        self.patches.append(patch)
        self.bodies[key] = apply_merge_patch(self.bodies[key], {"status": patch})

    async def delete(self, ref: WorkflowRef) -> None:
        self.bodies.pop((ref.namespace, ref.name), None)
        self.deleted.append(ref.name)

    async def post_event(
        self, ref: WorkflowRef, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        self.events.append((ref.name, reason))


__all__ = ["MemoryStore", "apply_merge_patch", "merge_patch"]
