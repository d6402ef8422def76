"""What request validation depends on besides the request: the shared root, limits, preset names.

Each process reads it once, at start, from the environment (``TTS_*`` variables, see
``docs/configuration.md``; :func:`policy_from_env`, called by the command modules) and passes it to
every check: :mod:`tts_api.validation` takes it as an argument, and pydantic gets it as validation
context::

    WorkflowRequest.model_validate(body, context={"policy": policy})
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tts_api.outputs import DEFAULT_OUTPUT_DIR, output_folder
from tts_api.shared_paths import DEFAULT_SHARED_PREFIX, SharedRoot
from tts_api.speech_models import KNOWN_MODELS, unknown_model_message

# Hard ceilings, also written into the CRD schema; the configurable limits live below them.
TEXT_LENGTH_CEILING = 20_000
DEFAULT_MAX_TEXT_LENGTH = 5_000
MIN_TOKENS_PER_SEGMENT = 20
MAX_TOKENS_PER_SEGMENT = 600
EMOTION_TEXT_LENGTH_CEILING = 1_000
PRESET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"


class ValidationPolicy(BaseSettings):
    """Limits and roots that request validation applies (environment: ``TTS_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="TTS_", frozen=True, extra="ignore")

    shared_dir: Path = Field(
        default=Path(DEFAULT_SHARED_PREFIX),
        description="Where the shared volume is mounted on this machine.",
    )
    shared_prefix: str = Field(
        default=DEFAULT_SHARED_PREFIX,
        description="How API paths name the shared volume (the workflow API uses /share).",
    )
    output_dir: str = Field(
        default=DEFAULT_OUTPUT_DIR,
        description="The folder under the shared root that `output_path` must lie under "
        "(`workflows/output`: /share/workflows/output/...); empty: anywhere under the shared root.",
    )
    output_per_namespace: bool = Field(
        default=False,
        description="Each namespace writes only under its own folder of the output folder "
        "(/share/workflows/output/<namespace>/...), checked by the inference pods.",
    )
    delete_outputs: bool = Field(
        default=True,
        description="Delete a workflow's audio with it (deleted, or its time to live run out); the "
        "inference pods delete only files whose mark names that workflow.",
    )
    max_text_length: int = Field(
        default=DEFAULT_MAX_TEXT_LENGTH,
        ge=1,
        le=TEXT_LENGTH_CEILING,
        description="Longest `text` accepted, in characters.",
    )
    check_disk: bool = Field(
        default=True,
        description="Check paths on the shared volume (symbolic links, existence) where it is mounted; "
        "off when re-reading records that were checked when they were accepted.",
    )
    voice_presets: frozenset[str] | None = Field(
        default=None,
        description="Preset names `reference_audio` may use; None accepts any well-formed name "
        "and leaves the check to the inference pod, which holds the preset file.",
    )

    models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=KNOWN_MODELS,
        description="The models requests may name (`model`), comma-separated: "
        + ", ".join(KNOWN_MODELS)
        + " by default. A request naming another is refused with INVALID_INPUT.",
    )
    default_model: str | None = Field(
        default=None,
        description="The model a request that names none gets; unset: the first of `models`.",
    )

    @field_validator("models", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _prefix_is_valid(self) -> ValidationPolicy:
        SharedRoot(self.shared_dir, self.shared_prefix)  # raises on a bad prefix
        if self.default_model is not None and self.default_model not in self.models:
            raise ValueError("TTS_DEFAULT_MODEL: " + unknown_model_message(self.default_model, self.models))
        if ".." in self.output_dir.split("/") or self.output_dir.startswith("/"):
            raise ValueError(
                f"TTS_OUTPUT_DIR must be a folder relative to the shared root, got {self.output_dir!r}"
            )
        return self

    @property
    def default_model_name(self) -> str:
        """The model a request that names none is for: ``default_model``, else the first configured."""
        return self.default_model or (self.models or KNOWN_MODELS)[0]

    def knowing_voices(self, names: Iterable[str]) -> ValidationPolicy:
        """This policy with ``names`` (stored voices found for a request) accepted beside the presets."""
        added = frozenset(names)
        if self.voice_presets is None or added <= self.voice_presets:
            return self
        return self.model_copy(update={"voice_presets": self.voice_presets | added})

    def output_folder(self, namespace: str | None = None) -> str:
        """The API path outputs must lie under; a namespace's own folder with ``output_per_namespace``."""
        return output_folder(
            self.shared_root.prefix, self.output_dir, namespace if self.output_per_namespace else None
        )

    @property
    def shared_root(self) -> SharedRoot:
        return SharedRoot(self.shared_dir, self.shared_prefix)


def stored_record_policy(policy: ValidationPolicy) -> ValidationPolicy:
    """The policy for re-reading an accepted record: no disk checks, no limit tighter than the CRD's.

    A record stays readable when its reference audio is deleted later, a limit is lowered, a
    voice preset it names is removed from the presets file, the output folder is moved, or the model it
    names is no longer configured (no models configured: any well-formed name is read).
    """
    return policy.model_copy(
        update={
            "check_disk": False,
            "max_text_length": TEXT_LENGTH_CEILING,
            "voice_presets": None,
            "output_dir": "",
            "models": (),
        }
    )


@lru_cache(maxsize=1)
def policy_from_env() -> ValidationPolicy:
    """The process-wide policy, read once from the environment: for the command modules, at start."""
    return ValidationPolicy()


def policy_from_context(context: Any) -> ValidationPolicy:
    """The policy passed as validation context, or the one from the environment.

    The fallback serves only a model validated without a policy (a test, a script): every component
    passes its own, read once at its start.
    """
    given = context.get("policy") if isinstance(context, dict) else None
    if isinstance(given, ValidationPolicy):
        return given
    return policy_from_env()
