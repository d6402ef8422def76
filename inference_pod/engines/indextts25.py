"""IndexTTS-2.5 (``indextts25.infer_v2_5.IndexTTS2``, PyPI ``indextts25-inference``), resident, offline.

The checkpoint comes from a mounted directory (``TTS_WORKER_CHECKPOINT_DIR``, the model store's
``indextts-2.5`` folder) that holds its auxiliary models too, as plain folders under ``hf_cache/``
(w2v-bert-2.0, CAMPPlus, BigVGAN); the start check refuses to load while any is missing, so the
package never reaches for the hub. How each request field maps (docs/inference-pod.md):

* ``reference_audio`` is required by the model: a request without one speaks in
  ``TTS_WORKER_DEFAULT_VOICE``, else fails with INVALID_INPUT naming ``reference_audio``.
* ``language`` (es, en, zh, ja, ar) is the model's language token and text normalization; unset, it is
  detected from the text's script (:func:`detect_language`); another code is INVALID_INPUT.
* ``emotion_reference``/``emotion_alpha``/``emotion_vector``/``use_random`` reach the model as they are
  (a vector takes precedence over a reference); ``emotion_text`` is not understood (2.5 has no
  text-emotion model): the synthesis goes on and the outcome carries a warning.
* ``speed`` in ``native_speeds`` (1.0 to 1/0.78) is 2.5's duration control, ``duration_factor = 1/speed``
  (below 0.78 it saturates); the worker changes the tempo of the rest.

Conditioning is cached by the package itself (keyed by the audio's path and mtime, 8 of each kind).
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference_pod.engines.base import (
    AudioCallback,
    EngineDescription,
    JobCancelledError,
    ProgressCallback,
    SynthesisOutcome,
    SynthesisRequest,
    segment_timing,
)
from inference_pod.engines.indextts2 import (
    checked_audio_loader,
    classify_failure,
    release_cached_memory,
    torch_device,
)
from inference_pod.settings import WorkerSettings
from tts_api.errors import ErrorCode, TTSError, invalid_input
from tts_api.registry import CacheUse, ModelState
from tts_api.results import Capabilities, SegmentTiming

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
LANGUAGES = ("es", "en", "zh", "ja", "ar")
# duration_factor below this no longer shortens the speech: the fastest native speed is its inverse.
FASTEST_DURATION = 0.78
CACHE_BOUND = 8  # the package's own bound on each conditioning cache (infer_v2_5._CACHE_MAX)
EMOTION_TEXT_WARNING = (
    "emotion_text was not used: indextts-2.5 has no text-emotion model; give emotion_vector or "
    "emotion_reference instead"
)
# The keys of config.yaml that name a checkpoint file, and the file the repository holds for each.
CONFIG_FILES = {
    "gpt_checkpoint": "gpt.pth",
    "s2mel_checkpoint": "s2mel.pth",
    "w2v_stat": "wav2vec2bert_stats.pt",
    "emo_matrix": "feat2.pt",
    "spk_matrix": "feat1.pt",
}

_SPANISH = set("ñÑ¿¡áéíóúÁÉÍÓÚü")


def detect_language(text: str) -> str:
    """The language of ``text`` by its script: kana -> ja, Han -> zh, Arabic -> ar; Latin text is es
    when it has Spanish letters or marks (ñ ¿ ¡ accented vowels), else en."""
    if any("\u3040" <= c <= "\u30ff" or "\u31f0" <= c <= "\u31ff" for c in text):
        return "ja"
    if any("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" for c in text):
        return "zh"
    if any("\u0600" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f" for c in text):
        return "ar"
    return "es" if any(c in _SPANISH for c in text) else "en"


def duration_factor(speed: float) -> float:
    """2.5's ``duration_factor`` for the API's ``speed`` (> 1 faster), within what the model honours."""
    return max(FASTEST_DURATION, min(1.0, 1.0 / speed))


def checkpoint_gaps(checkpoint_dir: Path, config: Path) -> list[str]:
    """The files the package would fail to open, or would fetch from the hub: those config.yaml
    names, and the rest of the catalog's ``indextts-2.5`` files where the engine reads them."""
    import yaml

    from model_store.catalog import INDEXTTS_2_5
    from model_store.inventory import locate

    try:
        cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [f"a readable config.yaml ({exc})"]
    if not isinstance(cfg, dict):
        return ["a config.yaml that is a mapping"]
    named = {key: cfg.get(key) for key in CONFIG_FILES}
    gaps = [
        f"{name} ({key} of config.yaml)"
        for key, name in named.items()
        if not isinstance(name, str) or not (checkpoint_dir / name).is_file()
    ]
    renamed = set(CONFIG_FILES.values())
    for group in (INDEXTTS_2_5.checkpoint, *INDEXTTS_2_5.auxiliaries):
        for filename in group.files:
            if group is INDEXTTS_2_5.checkpoint and filename in renamed:
                continue  # checked as config.yaml names it
            if locate(INDEXTTS_2_5, checkpoint_dir, group, filename) is None:
                gaps.append(f"{group.placed}/{filename}" if group.placed else filename)
    return gaps


class IndexTTS25Engine:
    name = "indextts25"
    native_speeds = (1.0, round(1.0 / FASTEST_DURATION, 4))

    def __init__(
        self,
        checkpoint_dir: Path,
        *,
        device: str = "auto",
        require_gpu: bool = False,
        attn_backend: str = "sdpa",
        fp16: bool = False,
        max_mel_tokens: int = 1500,
        num_beams: int = 3,
        default_voice: Path | None = None,
        text_normalization: bool = True,
        nemo_cache_dir: Path | None = None,
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.device_setting = device
        self.require_gpu = require_gpu
        self.attn_backend = attn_backend
        self.fp16 = fp16
        self.generation: dict[str, Any] = {"max_mel_tokens": max_mel_tokens, "num_beams": num_beams}
        self.default_voice = default_voice
        self.text_normalization = text_normalization
        self.nemo_cache_dir = nemo_cache_dir
        self.model: Any = None
        self.device = "cpu"
        self.version = _package_version()
        self.counts = {name: [0, 0] for name in ("speaker", "emotion", "emotion_vector")}  # hits, misses
        self._state = ModelState.LOADING
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: WorkerSettings, *, device: str | None = None) -> IndexTTS25Engine:
        if settings.checkpoint_dir is None:
            raise ValueError("the indextts25 engine needs TTS_WORKER_CHECKPOINT_DIR")
        return cls(
            settings.checkpoint_dir,
            device=device if device is not None and settings.device == "auto" else settings.device,
            require_gpu=settings.require_gpu,
            attn_backend=settings.attn_backend,
            fp16=settings.gpt_bf16,
            max_mel_tokens=settings.max_mel_tokens,
            num_beams=settings.num_beams,
            default_voice=settings.default_voice,
            text_normalization=settings.text_normalization,
            nemo_cache_dir=settings.nemo_cache_dir,
        )

    @property
    def state(self) -> ModelState:
        return self._state

    def caches(self) -> dict[str, CacheUse]:
        model = self.model
        sizes = {
            "speaker": len(model._spk_cache) if model is not None else 0,
            "emotion": len(model._emo_cache) if model is not None else 0,
            "emotion_vector": len(model._emovec_cache) if model is not None else 0,
        }
        return {
            name: CacheUse(entries=sizes[name], capacity=CACHE_BOUND, hits=hits, misses=misses)
            for name, (hits, misses) in self.counts.items()
        }

    @property
    def description(self) -> EngineDescription:
        return EngineDescription(
            model_type="IndexTTS-2.5",
            model_version=self.version,
            device=self.device,
            model_path=str(self.checkpoint_dir),
            capabilities=Capabilities(
                text_to_speech=True,
                voice_cloning=True,
                emotion_control=True,
                multi_language=True,
                real_time=False,
                languages=list(LANGUAGES),
            ),
        )

    # --- loading ---------------------------------------------------------------------------------

    def load(self) -> None:
        try:
            self._load()
        except Exception:
            self._state = ModelState.ERROR
            raise
        self._state = ModelState.READY

    def _load(self) -> None:
        config = self.checkpoint_dir / "config.yaml"
        if not config.is_file():
            raise TTSError(
                ErrorCode.MODEL_NOT_READY,
                f"no IndexTTS-2.5 checkpoint at {self.checkpoint_dir} (config.yaml missing); "
                "mount the checkpoint volume there or set TTS_WORKER_CHECKPOINT_DIR",
            )
        gaps = checkpoint_gaps(self.checkpoint_dir, config)
        if gaps:
            shown = ", ".join(gaps[:4]) + (f" and {len(gaps) - 4} more" if len(gaps) > 4 else "")
            raise TTSError(
                ErrorCode.MODEL_NOT_READY,
                f"the IndexTTS-2.5 checkpoint at {self.checkpoint_dir} is incomplete: {shown} missing; "
                "pull it with `indextts-k8s models pull indextts-2.5`",
            )
        self.device = torch_device(self.device_setting, require_gpu=self.require_gpu)
        if self.attn_backend == "flash":
            try:
                import flash_attn  # noqa: F401
            except ImportError as exc:
                raise TTSError(
                    ErrorCode.MODEL_NOT_READY,
                    "TTS_WORKER_ATTN_BACKEND=flash needs flash-attn (indextts25-inference[flash]); "
                    "install it or use sdpa",
                ) from exc
        if self.nemo_cache_dir is not None:
            from indextts25.utils import nemo_tn

            self.nemo_cache_dir.mkdir(parents=True, exist_ok=True)
            nemo_tn._CACHE_DIR = str(self.nemo_cache_dir)  # the package's default is under $HOME
        from indextts25.infer_v2_5 import IndexTTS2

        self.model = IndexTTS2(
            cfg_path=str(config),
            model_dir=str(self.checkpoint_dir),
            device=self.device,
            use_accel=self.attn_backend == "flash" and self.device.startswith("cuda"),
            use_bf16=self.fp16,
        )
        self._check_reference_audio()

    def _check_reference_audio(self) -> None:
        """A reference that cannot be decoded or is too short is the user's mistake: INVALID_INPUT."""
        self.model._load_and_cut_audio = checked_audio_loader(self.model._load_and_cut_audio)

    # --- synthesis -----------------------------------------------------------------------------

    def language_of(self, request: SynthesisRequest) -> str:
        if request.language is None:
            return detect_language(request.text)
        if request.language not in LANGUAGES:
            raise invalid_input(
                "language",
                f"indextts-2.5 does not speak {request.language!r}; it speaks {', '.join(LANGUAGES)}",
            )
        return request.language

    def arguments(self, request: SynthesisRequest, speaker: Path, language: str) -> dict[str, Any]:
        """The request's fields as ``IndexTTS2.infer_generator`` keywords."""
        return {
            "spk_audio_prompt": str(speaker),
            "text": request.text,
            "output_path": None,
            "lang": language,
            "emo_audio_prompt": str(request.emotion_reference) if request.emotion_reference else None,
            "emo_alpha": request.emotion_alpha,
            "emo_vector": request.emotion_vector,
            "use_random": request.use_random,
            "max_text_tokens_per_segment": request.max_text_tokens_per_segment,
            "duration_factor": duration_factor(request.speed),
            "text_normalization": self.text_normalization,
            "stream_return": True,
            "emit_text": True,
            **self.generation,
        }

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        if self._state is not ModelState.READY or self.model is None:
            raise TTSError(
                ErrorCode.MODEL_NOT_READY, f"the IndexTTS-2.5 model is {self._state.value}; retry later"
            )
        language = self.language_of(request)
        speaker = request.reference_audio or self.default_voice
        if speaker is None:
            raise invalid_input(
                "reference_audio",
                "IndexTTS-2.5 speaks in the voice of a reference: give a .wav under the shared root or a "
                "preset name (or configure TTS_WORKER_DEFAULT_VOICE)",
            )
        warnings: list[str] = []
        if request.emotion_text:
            warnings.append(EMOTION_TEXT_WARNING)
        if request.emotion_reference is not None and request.emotion_vector:
            warnings.append("emotion_reference was not used: emotion_vector takes precedence")
        with self._lock:
            try:
                self._count_caches(request, speaker)
                samples, timings = self._infer(self.arguments(request, speaker, language), progress, audio)
            except (JobCancelledError, TTSError):
                raise
            except Exception as exc:
                error = classify_failure(exc)
                if error.code is ErrorCode.INSUFFICIENT_MEMORY:
                    release_cached_memory()
                raise TTSError(error.code, error.message.replace("IndexTTS2", "IndexTTS-2.5")) from exc
        return SynthesisOutcome(samples=samples, sample_rate=SAMPLE_RATE, warnings=warnings, segments=timings)

    def _count_caches(self, request: SynthesisRequest, speaker: Path) -> None:
        """Hits and misses of the package's caches, as its keys (path and mtime) will find them."""
        from indextts25.infer_v2_5 import _audio_key

        spk_key = _audio_key(str(speaker))
        emotion = (
            request.emotion_reference if request.emotion_reference and not request.emotion_vector else None
        )
        emo_key = _audio_key(str(emotion)) if emotion else spk_key
        alpha = request.emotion_alpha if emotion else 1.0
        for name, cache, key in (
            ("speaker", self.model._spk_cache, spk_key),
            ("emotion", self.model._emo_cache, emo_key),
            ("emotion_vector", self.model._emovec_cache, (spk_key, emo_key, alpha)),
        ):
            self.counts[name][0 if key in cache else 1] += 1

    def _infer(
        self, arguments: dict[str, Any], progress: ProgressCallback, audio: AudioCallback | None
    ) -> tuple[npt.NDArray[np.int16], list[SegmentTiming]]:
        total = self.segment_count(arguments)
        progress(0, total)
        pieces: list[npt.NDArray[np.int16]] = []
        timings: list[SegmentTiming] = []
        offset = done = 0
        stream = self.model.infer_generator(**arguments)
        try:
            # Each segment's audio with its text, then a silence ("" as its text) when another follows.
            for wav, text in stream:
                piece = as_int16(wav)
                pieces.append(piece)
                if text:
                    timings.append(segment_timing(text, offset, len(piece), SAMPLE_RATE))
                offset += len(piece)
                if audio is not None:
                    audio(piece, SAMPLE_RATE)
                if text:
                    done += 1
                    progress(min(done, total), total)
        finally:
            stream.close()
        if not timings:
            raise TTSError(ErrorCode.PROCESSING_ERROR, "IndexTTS-2.5 produced no audio for this text")
        if done < total:
            progress(total, total)  # segments the model stopped on at once made no audio
        return np.ascontiguousarray(np.concatenate(pieces), dtype=np.int16), timings

    def segment_count(self, arguments: dict[str, Any]) -> int:
        """How many segments the package will speak (its own text preparation and split)."""
        model = self.model
        lang = arguments["lang"]
        text = model._prepare_text(arguments["text"], lang, arguments["text_normalization"])
        prefix = f"<|{lang}|> "
        return len(model.split_text_by_tokens(text, arguments["max_text_tokens_per_segment"], prefix)) or 1


def as_int16(piece: Any) -> npt.NDArray[np.int16]:
    """A (1, n) float tensor already scaled to +-32767 by the package, as 16-bit samples."""
    samples: npt.NDArray[np.int16] = piece.reshape(-1).numpy().astype(np.int16)
    return samples


def _package_version() -> str:
    try:
        return metadata.version("indextts25-inference")
    except metadata.PackageNotFoundError:
        return "2.5"
