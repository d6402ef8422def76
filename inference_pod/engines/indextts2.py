"""IndexTTS2 (``from indextts import IndexTTS2``, PyPI ``indextts2-inference``), resident, offline.

The checkpoint comes from a mounted directory (``TTS_WORKER_CHECKPOINT_DIR``); w2v-bert-2.0, the
MaskGCT semantic codec and CAMPPlus come from a hub cache on disk (``TTS_WORKER_HF_HOME``), read with
``HF_HUB_OFFLINE=1``. The model is loaded once, fp16 on CUDA. Speaker and emotion conditioning are
cached in a bounded LRU keyed by the audio's content hash (the package's own cache holds one entry
keyed by path). Every field of ``indextts_config`` reaches ``infer``; see :func:`infer_arguments`.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
from collections.abc import Callable
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
from inference_pod.settings import WorkerSettings
from tts_api.errors import ErrorCode, TTSError, invalid_input
from tts_api.registry import CacheUse, ModelState
from tts_api.results import Capabilities, SegmentTiming

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
# Reference audio shorter than this cannot condition the model.
MIN_AUDIO_SECONDS = 0.5


def infer_arguments(request: SynthesisRequest, speaker: Path) -> dict[str, Any]:
    """The request's fields as ``IndexTTS2.infer`` keywords (``output_path=None``: samples come back)."""
    return {
        "spk_audio_prompt": str(speaker),
        "text": request.text,
        "output_path": None,
        "emo_audio_prompt": str(request.emotion_reference) if request.emotion_reference else None,
        "emo_alpha": request.emotion_alpha,
        "emo_vector": request.emotion_vector,
        "use_emo_text": request.emotion_text is not None,
        "emo_text": request.emotion_text,
        "use_random": request.use_random,
        "max_text_tokens_per_segment": request.max_text_tokens_per_segment,
    }


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ConditioningCache:
    """A bounded, thread-safe LRU of conditioning tensors keyed by the audio's content hash."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def use(self) -> CacheUse:
        return CacheUse(entries=len(self), capacity=self.size, hits=self.hits, misses=self.misses)


def checkpoint_gaps(checkpoint_dir: Path, config: Path, hf_home: Path | None) -> list[str]:
    """The files the package would fail to open: those config.yaml names, and the auxiliary models'
    files in the hub cache (BigVGAN's only when the vocoder is a hub id, not a folder)."""
    import yaml

    from model_store.catalog import BIGVGAN, INDEXTTS_2
    from model_store.inventory import hub_cache_file

    try:
        cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [f"a readable config.yaml ({exc})"]
    if not isinstance(cfg, dict):
        return ["a config.yaml that is a mapping"]
    named = [
        cfg.get(key) for key in ("gpt_checkpoint", "s2mel_checkpoint", "w2v_stat", "emo_matrix", "spk_matrix")
    ]
    named.append((cfg.get("dataset") or {}).get("bpe_model"))
    gaps = [str(name) for name in named if isinstance(name, str) and not (checkpoint_dir / name).is_file()]
    qwen = cfg.get("qwen_emo_path")
    if isinstance(qwen, str) and not (checkpoint_dir / qwen).is_dir():
        gaps.append(qwen)
    hub_cache = (hf_home / "hub") if hf_home is not None else None
    vocoder = str((cfg.get("vocoder") or {}).get("name", ""))
    hub_files = [
        (group.repo, filename)
        for group in INDEXTTS_2.auxiliaries
        if group is not BIGVGAN
        for filename in group.files
    ]
    if vocoder and Path(vocoder).is_dir():
        gaps += [f"{vocoder}/{name}" for name in BIGVGAN.files if not (Path(vocoder) / name).is_file()]
    elif vocoder:
        hub_files += [(vocoder, name) for name in BIGVGAN.files]
    for repo, filename in hub_files:
        if hub_cache_file(hub_cache, repo, filename) is None:
            gaps.append(f"{repo}/{filename} (in the hub cache {hub_cache or 'of HF_HOME'})")
    return gaps


def checked_audio_loader(original: Callable[..., Any]) -> Callable[..., Any]:
    """The package's ``_load_and_cut_audio``, with a reference that cannot be decoded or is too short
    reported as the user's mistake (INVALID_INPUT); shared by both IndexTTS engines."""

    def load_audio(audio_path: str, max_seconds: float, verbose: bool = False, sr: int | None = None) -> Any:
        try:
            audio, rate = original(audio_path, max_seconds, verbose, sr)
        except Exception as exc:
            raise TTSError(
                ErrorCode.INVALID_INPUT,
                f"reference audio {Path(audio_path).name} cannot be decoded: {exc}",
            ) from exc
        if audio.shape[-1] < MIN_AUDIO_SECONDS * rate:
            raise TTSError(
                ErrorCode.INVALID_INPUT,
                f"reference audio {Path(audio_path).name} is shorter than {MIN_AUDIO_SECONDS} s; "
                "give 3 to 10 s of clear speech",
            )
        return audio, rate

    return load_audio


def torch_device(setting: str, *, require_gpu: bool) -> str:
    """The device an engine loads on: ``setting``, or for ``auto`` the first GPU when there is one;
    GPU_UNAVAILABLE when a GPU is required and none is visible."""
    import torch

    cuda = bool(torch.cuda.is_available())
    if require_gpu and not cuda:
        raise TTSError(
            ErrorCode.GPU_UNAVAILABLE,
            "no CUDA device is visible to this worker; request nvidia.com/gpu for the pod "
            "or unset TTS_WORKER_REQUIRE_GPU",
        )
    return ("cuda:0" if cuda else "cpu") if setting == "auto" else setting


def release_cached_memory() -> None:
    """After running out of GPU memory, hand torch's cached blocks back before the next job."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def classify_failure(exc: BaseException) -> TTSError:
    """The workflow API's error code for an exception out of torch or the package."""
    if isinstance(exc, TTSError):
        return exc
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return TTSError(
            ErrorCode.INSUFFICIENT_MEMORY,
            "the GPU ran out of memory; retry later, or lower max_text_tokens_per_segment or the text length",
        )
    return TTSError(ErrorCode.PROCESSING_ERROR, f"IndexTTS2 failed: {type(exc).__name__}: {text}")


def _use_grammar_cache(folder: Path) -> None:
    """Compile and read NeMo's text-normalization grammars in ``folder`` instead of the package's own.

    The package hard-codes a folder inside itself, which a pod's read-only root filesystem refuses.
    """
    from indextts.utils import front

    folder.mkdir(parents=True, exist_ok=True)

    def normalizer(_self: Any, lang: str) -> Any:
        from nemo_text_processing.text_normalization.normalize import Normalizer

        return Normalizer(input_case="cased", lang=lang, cache_dir=str(folder))

    front.TextNormalizer._get_nemo_normalizer = normalizer


class IndexTTS2Engine:
    name = "indextts2"
    native_speeds = (1.0, 1.0)  # no speed or duration control in its inference code

    def __init__(
        self,
        checkpoint_dir: Path,
        *,
        hf_home: Path | None = None,
        device: str = "auto",
        require_gpu: bool = False,
        use_fp16: bool = True,
        max_mel_tokens: int = 1500,
        num_beams: int = 3,
        cache_size: int = 16,
        language: str | None = None,
        default_voice: Path | None = None,
        nemo_cache_dir: Path | None = None,
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.hf_home = hf_home
        self.device_setting = device
        self.require_gpu = require_gpu
        self.use_fp16 = use_fp16
        self.generation = {"max_mel_tokens": max_mel_tokens, "num_beams": num_beams}
        self.language = language
        self.default_voice = default_voice
        self.nemo_cache_dir = nemo_cache_dir
        self.speaker_cache = ConditioningCache(cache_size)
        self.emotion_cache = ConditioningCache(cache_size)
        self.model: Any = None
        self.device = "cpu"
        self.version = "2.0"
        self._state = ModelState.LOADING
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: WorkerSettings, *, device: str | None = None) -> IndexTTS2Engine:
        if settings.checkpoint_dir is None:
            raise ValueError("the indextts2 engine needs TTS_WORKER_CHECKPOINT_DIR")
        hf_home = settings.hf_home
        if hf_home is None and (settings.checkpoint_dir / "hf_cache").is_dir():
            hf_home = settings.checkpoint_dir / "hf_cache"
        return cls(
            settings.checkpoint_dir,
            hf_home=hf_home,
            device=device if device is not None and settings.device == "auto" else settings.device,
            require_gpu=settings.require_gpu,
            use_fp16=settings.use_fp16,
            max_mel_tokens=settings.max_mel_tokens,
            num_beams=settings.num_beams,
            cache_size=settings.condition_cache_size,
            language=settings.text_language,
            default_voice=settings.default_voice,
            nemo_cache_dir=settings.nemo_cache_dir,
        )

    @property
    def state(self) -> ModelState:
        return self._state

    def caches(self) -> dict[str, CacheUse]:
        return {"speaker": self.speaker_cache.use(), "emotion": self.emotion_cache.use()}

    @property
    def description(self) -> EngineDescription:
        return EngineDescription(
            model_type="IndexTTS2",
            model_version=self.version,
            device=self.device,
            model_path=str(self.checkpoint_dir),
            capabilities=Capabilities(
                text_to_speech=True,
                voice_cloning=True,
                emotion_control=True,
                multi_language=True,
                real_time=False,
                languages=[self.language] if self.language else ["zh", "en"],
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
                f"no IndexTTS2 checkpoint at {self.checkpoint_dir} (config.yaml missing); "
                "mount the checkpoint volume there or set TTS_WORKER_CHECKPOINT_DIR",
            )
        gaps = checkpoint_gaps(self.checkpoint_dir, config, self.hf_home)
        if gaps:
            shown = ", ".join(gaps[:4]) + (f" and {len(gaps) - 4} more" if len(gaps) > 4 else "")
            raise TTSError(
                ErrorCode.MODEL_NOT_READY,
                f"the IndexTTS2 checkpoint at {self.checkpoint_dir} is incomplete: {shown} missing; "
                "pull it (indextts-k8s models pull indextts-2 --dir <models folder>) or fill the volume",
            )
        # Strictly offline: the hub is never asked; auxiliary models come from the cache on disk.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        if self.hf_home is not None:
            os.environ["HF_HOME"] = str(self.hf_home)
        self.device = torch_device(self.device_setting, require_gpu=self.require_gpu)
        from indextts import IndexTTS2

        if self.nemo_cache_dir is not None:
            _use_grammar_cache(self.nemo_cache_dir)
        self.model = IndexTTS2(
            model_dir=str(self.checkpoint_dir),
            cfg_path=str(config),
            use_fp16=self.use_fp16 and self.device.startswith("cuda"),
            device=self.device,
            use_cuda_kernel=False,
            language=self.language,
        )
        self.version = str(getattr(self.model, "model_version", None) or self.version)
        self._install_caches()

    def _install_caches(self) -> None:
        """Route the package's conditioning through content-hash LRUs and map audio errors."""
        model = self.model
        speaker_original = model._get_speaker_conditioning
        emotion_original = model._get_emotion_conditioning

        def speaker(spk_audio_prompt: str, verbose: bool = False) -> Any:
            def compute() -> Any:
                model.cache_spk_cond = None  # the package's one-entry cache: always recompute here
                model.cache_spk_audio_prompt = None
                return speaker_original(spk_audio_prompt, verbose)

            return self.speaker_cache.get_or_compute(file_digest(spk_audio_prompt), compute)

        def emotion(emo_audio_prompt: str, verbose: bool = False) -> Any:
            def compute() -> Any:
                model.cache_emo_cond = None
                model.cache_emo_audio_prompt = None
                return emotion_original(emo_audio_prompt, verbose)

            return self.emotion_cache.get_or_compute(file_digest(emo_audio_prompt), compute)

        model._load_and_cut_audio = checked_audio_loader(model._load_and_cut_audio)
        model._get_speaker_conditioning = speaker
        model._get_emotion_conditioning = emotion

    # --- synthesis -----------------------------------------------------------------------------

    def segment_texts(self, text: str, max_tokens: int) -> list[str]:
        """The text of each segment the package will speak, as its tokenizer normalizes it."""
        tokenizer = self.model.tokenizer
        segments = tokenizer.split_segments(tokenizer.tokenize(text), max_tokens)
        return ["".join(tokens).replace("▁", " ").strip() for tokens in segments] or [text]

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        if self._state is not ModelState.READY or self.model is None:
            raise TTSError(
                ErrorCode.MODEL_NOT_READY, f"the IndexTTS2 model is {self._state.value}; retry later"
            )
        speaker = request.reference_audio or self.default_voice
        if speaker is None:
            raise invalid_input(
                "reference_audio",
                "IndexTTS2 speaks in the voice of a reference: give a .wav under the shared root or a "
                "preset name (or configure TTS_WORKER_DEFAULT_VOICE)",
            )
        warnings: list[str] = []
        if request.emotion_reference is not None and (request.emotion_vector or request.emotion_text):
            warnings.append("emotion_reference was not used: emotion_vector or emotion_text takes precedence")
        with self._lock:
            try:
                samples, timings = self._infer(infer_arguments(request, speaker), request, progress, audio)
            except JobCancelledError:
                raise
            except Exception as exc:
                error = classify_failure(exc)
                if error.code is ErrorCode.INSUFFICIENT_MEMORY:
                    release_cached_memory()
                raise error from exc
        return SynthesisOutcome(samples=samples, sample_rate=SAMPLE_RATE, warnings=warnings, segments=timings)

    def _infer(
        self,
        arguments: dict[str, Any],
        request: SynthesisRequest,
        progress: ProgressCallback,
        audio: AudioCallback | None,
    ) -> tuple[npt.NDArray[np.int16], list[SegmentTiming]]:
        texts = self.segment_texts(request.text, request.max_text_tokens_per_segment)
        total = len(texts)
        progress(0, total)
        pieces: list[npt.NDArray[np.int16]] = []
        timings: list[SegmentTiming] = []
        offset = 0
        stream = self.model.infer(**arguments, stream_return=True, **self.generation)
        try:
            # The stream yields each segment's audio, then the silence that follows it; a silence is
            # passed on only once another segment follows it.
            for index, piece in enumerate(stream):
                if index % 2 == 1:
                    pieces.append(as_int16(piece))
                    offset += len(pieces[-1])
                    continue
                if pieces and audio is not None:
                    audio(pieces[-1], SAMPLE_RATE)
                pieces.append(as_int16(piece))
                text = texts[index // 2] if index // 2 < total else ""
                timings.append(segment_timing(text, offset, len(pieces[-1]), SAMPLE_RATE))
                offset += len(pieces[-1])
                if audio is not None:
                    audio(pieces[-1], SAMPLE_RATE)
                progress(min(index // 2 + 1, total), total)
        finally:
            stream.close()
        if len(pieces) % 2 == 0 and pieces:
            pieces.pop()  # the silence after the last segment
        if not pieces:
            raise TTSError(ErrorCode.PROCESSING_ERROR, "IndexTTS2 produced no audio for this text")
        return np.ascontiguousarray(np.concatenate(pieces), dtype=np.int16), timings


def as_int16(piece: Any) -> npt.NDArray[np.int16]:
    """A (1, n) float tensor in [-1, 1] from the model, as 16-bit samples."""
    import torch

    samples: npt.NDArray[np.int16] = (piece.float() * 32767).clamp(-32767, 32767).to(torch.int16).numpy()
    return samples.reshape(-1)
