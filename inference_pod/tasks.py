"""The workflow API's four tasks, as functions over an engine: what to do, apart from NATS.

``generate_speech`` resolves the request's paths (presets included) under the shared root, checks
the reference audio, runs the engine, writes the WAV and returns the API's result.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Literal

import soundfile

from inference_pod.audio_output import free_bytes, pcm16, preflight, write_failure, write_wav
from inference_pod.engines.base import (
    Engine,
    ProgressCallback,
    SynthesisOutcome,
    SynthesisRequest,
    model_info,
    native_speed,
)
from inference_pod.gpu import GpuStatus
from inference_pod.speech_sender import SpeechSender
from tts_api.errors import ErrorCode, TTSError, invalid_input
from tts_api.messages import JobMessage
from tts_api.outputs import (
    OutputMark,
    OutputRuleError,
    check_output_location,
    check_output_on_volume,
    check_output_owner,
)
from tts_api.registry import ModelState
from tts_api.request import IndexTTSConfig
from tts_api.results import (
    GpuReport,
    HealthReport,
    ModelInfoReport,
    SpeechParameters,
    SpeechResult,
    VoicePresetList,
)
from tts_api.shared_paths import SharedPathError, SharedRoot
from tts_api.speech_models import model_of
from tts_api.speech_stream import OUTPUT_SAMPLE_RATE
from voice_library.presets import Presets, preset_list, reference_audio

# Shorter reference audio carries too little voice to condition on.
MIN_REFERENCE_SECONDS = 0.5


def resolve_audio(field: str, value: str, root: SharedRoot, presets: Presets) -> Path:
    """The local file of a reference: a preset's audio, or a .wav under the shared root, readable."""
    value = reference_audio(field, value, presets)
    try:
        path = root.local_path(value)
    except SharedPathError as exc:
        raise invalid_input(field, str(exc)) from None
    if not path.is_file():
        raise invalid_input(field, f"{value} does not exist on the shared volume; upload it first")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise invalid_input(
            field, f"{value} is not readable audio ({exc}); give a WAV file of the voice"
        ) from None
    if info.frames == 0 or info.duration < MIN_REFERENCE_SECONDS:
        raise invalid_input(
            field,
            f"{value} is {info.duration:.2f} s long; give at least {MIN_REFERENCE_SECONDS} s of speech "
            "(3 to 10 s works best)",
        )
    return path


def synthesis_request(config: IndexTTSConfig, root: SharedRoot, presets: Presets) -> SynthesisRequest:
    if config.text is None:
        raise invalid_input("text", "is required for indextts.generate_speech")
    return SynthesisRequest(
        text=config.text,
        reference_audio=(
            resolve_audio("reference_audio", config.reference_audio, root, presets)
            if config.reference_audio
            else None
        ),
        emotion_reference=(
            resolve_audio("emotion_reference", config.emotion_reference, root, presets)
            if config.emotion_reference
            else None
        ),
        emotion_alpha=config.emotion_alpha,
        emotion_vector=config.effective_emotion_vector(),
        emotion_text=config.emotion_text,
        use_random=config.use_random,
        max_text_tokens_per_segment=config.max_text_tokens_per_segment,
        language=config.language,
    )


def check_model(engine: Engine, config: IndexTTSConfig, default_model: str | None = None) -> None:
    """A job runs only on its model's engine (the request's, else the deployment's default), never on
    another; a language the engine does not speak is refused, not ignored."""
    served = model_of(engine.name)
    wanted = config.model or default_model
    if wanted is not None and wanted != served:
        raise TTSError(
            ErrorCode.MODEL_NOT_READY,
            f"model {wanted!r} was asked for and this worker serves {served!r}; "
            f"run a worker for {wanted} (TTS_WORKER_ENGINE)",
        )
    spoken = engine.description.capabilities.languages
    if config.language is not None and spoken and config.language not in spoken:
        raise invalid_input(
            "language", f"{served} does not speak {config.language!r}; it speaks {', '.join(spoken)}"
        )


def generate_speech(
    engine: Engine,
    config: IndexTTSConfig,
    root: SharedRoot,
    presets: Presets,
    progress: ProgressCallback,
    *,
    owner: OutputMark,
    folder: str,
    sender: SpeechSender | None = None,
    default_model: str | None = None,
) -> SpeechResult:
    """Speak ``config.text`` into ``config.output_path``, or to ``sender``'s stream, or both; raise
    TTSError with the API's error code.

    ``owner`` says which workflow and stage writes (the mark the WAV gets); the output must lie under
    ``folder``. An output this workflow's stage wrote already (an attempt that finished its audio
    but not its report) is reported as it was, not synthesized again (a stream is always spoken).
    """
    if engine.state is not ModelState.READY:
        raise TTSError(
            ErrorCode.MODEL_NOT_READY, f"the {engine.name} model is {engine.state.value}; retry later"
        )
    check_model(engine, config, default_model)
    if config.output_path is None and sender is None:
        raise invalid_input("output_path", "is required for indextts.generate_speech")
    written: tuple[str, Path] | None = None
    if config.output_path is not None:
        output, local = written = _output_location(config.output_path, root, folder)
        finished = _claim(output, local, owner)
        if finished is not None and sender is None:
            return finished
        preflight(output, local)
    request = synthesis_request(config, root, presets)
    if sender is not None:
        speed = sender.stream.speed
        request = dataclasses.replace(request, speed=native_speed(engine, speed))
        sender.tempo = speed / request.speed
    started = time.perf_counter()
    outcome = engine.synthesize(request, progress, sender.audio if sender is not None else None)
    if sender is not None:
        sender.finish()
    processing_time = time.perf_counter() - started
    # The WAV's figures where one was written (at the engine's own speed), else the stream's.
    tempo = 1.0 if written or sender is None else sender.tempo
    result = SpeechResult(
        output_path=written[0] if written else None,
        duration=round(outcome.duration / tempo, 3),
        sample_rate=outcome.sample_rate if written or sender is None else OUTPUT_SAMPLE_RATE,
        text_length=len(request.text),
        processing_time=round(processing_time, 3),
        model_info=model_info(engine, full=False),
        parameters=SpeechParameters(
            reference_audio=config.reference_audio,
            emotion_reference=config.emotion_reference,
            emotion_alpha=config.emotion_alpha,
            emotion_vector=request.emotion_vector,
            emotion_text=config.emotion_text,
            use_random=config.use_random,
            max_text_tokens_per_segment=config.max_text_tokens_per_segment,
            model=model_of(engine.name),
            language=config.language,
        ),
        warnings=outcome.warnings,
        segments=[
            timing.model_copy(
                update={"start": round(timing.start / tempo, 3), "end": round(timing.end / tempo, 3)}
            )
            for timing in outcome.segments
        ],
    )
    if written is not None:
        _write(written, outcome, result, root, owner)
    return result


def _write(
    written: tuple[str, Path],
    outcome: SynthesisOutcome,
    result: SpeechResult,
    root: SharedRoot,
    owner: OutputMark,
) -> None:
    output, local = written
    _claim(output, local, owner)  # again: another workflow may have written it meanwhile
    mark = owner.model_copy(update={"result": result.model_dump(mode="json")})
    try:
        write_wav(root, output, outcome.samples, outcome.sample_rate, mark)
    except SharedPathError as exc:
        raise invalid_input("output_path", str(exc)) from None
    except OSError as exc:
        found = free_bytes(local)
        needed = len(pcm16(outcome.samples)) + 1024
        raise write_failure(exc.errno, output, found[0] if found else None, needed) from exc


def output_owner(job: JobMessage) -> OutputMark:
    """The mark a job's output gets: its workflow, its stage, its job id."""
    return OutputMark(
        workflow_uid=job.workflow.uid,
        namespace=job.workflow.namespace,
        name=job.workflow.name,
        stage=job.task.short,
        job_id=job.job_id,
    )


def _output_location(value: str, root: SharedRoot, folder: str) -> tuple[str, Path]:
    """The canonical API path and local file of an output, checked against the output rules."""
    try:
        output = root.normalize(value)
        check_output_location(output, folder, setting="TTS_OUTPUT_DIR, TTS_OUTPUT_PER_NAMESPACE")
        local = root.local_path(output)
        check_output_on_volume(output, local)
    except (SharedPathError, OutputRuleError) as exc:
        raise invalid_input("output_path", str(exc)) from None
    return output, local


def _claim(output: str, local: Path, owner: OutputMark) -> SpeechResult | None:
    """Refuse another's file; the result recorded in this stage's own finished output, if any."""
    try:
        mark = check_output_owner(output, local, owner.workflow_uid)
    except OutputRuleError as exc:
        raise invalid_input("output_path", str(exc)) from None
    if mark is None or mark.stage != owner.stage or mark.result is None:
        return None
    try:
        return SpeechResult.model_validate(mark.result)
    except ValueError:
        return None


def health_check(engine: Engine, gpu: GpuStatus, *, busy: bool, gpu_required: bool) -> HealthReport:
    """healthy when the model is ready (and a GPU is present where one is required)."""
    state = engine.state
    status: Literal["healthy", "degraded", "unhealthy"]
    if state is ModelState.ERROR or (gpu_required and not gpu.available):
        status = "unhealthy"
    elif state is ModelState.LOADING:
        status = "degraded"
    else:
        status = "healthy"
    return HealthReport(
        status=status,
        gpu=GpuReport(available=gpu.available, count=gpu.count, name=gpu.name),
        model=state.value,
        gpu_lock="busy" if busy else "available",
    )


def get_model_info(engine: Engine) -> ModelInfoReport:
    return ModelInfoReport(model_info=model_info(engine, full=True))


def list_voice_presets(presets: Presets) -> VoicePresetList:
    return preset_list(presets)
