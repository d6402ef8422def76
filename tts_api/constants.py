"""Names fixed for every component: the Kubernetes API, the workflow API's task names, phases, conditions.

Each name is defined here once; the gateway, the operator and the inference pods import it.
"""

from __future__ import annotations

from enum import StrEnum

# --- Kubernetes API -----------------------------------------------------------------------------

API_GROUP = "tts.indextts.io"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
KIND = "TTSWorkflow"
LIST_KIND = "TTSWorkflowList"
PLURAL = "ttsworkflows"
SINGULAR = "ttsworkflow"
SHORT_NAME = "ttswf"
CRD_NAME = f"{PLURAL}.{API_GROUP}"

# --- The workflow API's task names, in the order a chain may hold them -------------------------


class TaskName(StrEnum):
    """The four tasks of the workflow API's ``workflow_chain``."""

    GENERATE_SPEECH = "indextts.generate_speech"
    HEALTH_CHECK = "indextts.health_check"
    GET_MODEL_INFO = "indextts.get_model_info"
    LIST_VOICE_PRESETS = "indextts.list_voice_presets"

    @property
    def short(self) -> str:
        """The name without the ``indextts.`` prefix, usable as a NATS subject token."""
        return self.value.split(".", 1)[1]


# --- Emotion vector: the API's 喜,怒,哀,惧,厌恶,低落,惊喜,平静 ------------------------------------

EMOTION_NAMES: tuple[str, ...] = (
    "happy",
    "angry",
    "sad",
    "afraid",
    "disgusted",
    "melancholic",
    "surprised",
    "calm",
)

# --- Workflow and stage lifecycle -------------------------------------------------------------


class Phase(StrEnum):
    """``status.phase`` of a TTSWorkflow."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_PHASES


FINISHED_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})


class StageState(StrEnum):
    """``status.stages[].state``: one task of the chain."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class ConditionType(StrEnum):
    """Condition types, so that ``kubectl wait --for=condition=Succeeded ttswf/NAME`` works."""

    ACCEPTED = "Accepted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"
