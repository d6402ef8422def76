"""espeak-ng through ctypes, from the ``espeakng-loader`` wheel: a CPU engine that needs no weights.

Mandarin (``cmn``) when the text holds CJK characters, else English (``en``); emotion becomes
prosody (:mod:`inference_pod.engines.prosody`). It cannot clone a voice: a request with reference
audio still gets speech, and a warning saying so.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from inference_pod.engines.base import (
    AudioCallback,
    EngineDescription,
    ProgressCallback,
    SynthesisOutcome,
    SynthesisRequest,
    segment_timing,
)
from inference_pod.engines.prosody import Prosody, prosody_for, vector_from_text
from inference_pod.engines.segments import has_cjk, split_segments
from tts_api.errors import ErrorCode, TTSError
from tts_api.registry import CacheUse, ModelState
from tts_api.results import Capabilities, SegmentTiming

log = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE and flags from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
# The words a minute espeak-ng speaks at (espeakRATE_MINIMUM, espeakRATE_MAXIMUM).
MIN_RATE, MAX_RATE = 80, 450
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

VOICE_MANDARIN = "cmn"
VOICE_ENGLISH = "en"
# Silence between segments, seconds.
SEGMENT_PAUSE = 0.12

# libespeak-ng holds global state: one synthesis at a time in the whole process.
_LIBRARY_LOCK = threading.Lock()


def voice_for(text: str) -> str:
    return VOICE_MANDARIN if has_cjk(text) else VOICE_ENGLISH


class _Library:
    """The loaded libespeak-ng, initialized once per process."""

    _instance: _Library | None = None

    def __init__(self) -> None:
        import espeakng_loader

        self.path = espeakng_loader.get_library_path()
        self.data = espeakng_loader.get_data_path()
        self.lib: Any = ctypes.CDLL(self.path)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.lib.espeak_Info.argtypes = [ctypes.c_void_p]
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data.encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data at {self.data}")
        self.sample_rate = int(rate)
        self.version = (self.lib.espeak_Info(None) or b"").decode()
        self._chunks: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        self._callback = _SYNTH_CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Library:
        with _LIBRARY_LOCK:
            if cls._instance is None:
                cls._instance = _Library()
            return cls._instance

    def _collect(self, wav: Any, count: int, _events: Any) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.int16, copy=True))
        return 0

    def speak(self, text: str, voice: str, prosody: Prosody) -> np.ndarray[Any, np.dtype[np.int16]]:
        with _LIBRARY_LOCK:
            self._chunks = []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise RuntimeError(f"espeak-ng has no voice {voice!r}")
            for parameter, value in (
                (_RATE, prosody.rate),
                (_PITCH, prosody.pitch),
                (_VOLUME, prosody.volume),
                (_RANGE, prosody.pitch_range),
            ):
                self.lib.espeak_SetParameter(parameter, value, 0)
            data = text.encode()
            status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


class EspeakEngine:
    """The default engine where no IndexTTS2 checkpoint is mounted."""

    name = "espeak"
    # espeak-ng's own rate, from about 80 to 450 words a minute around its usual 175.
    native_speeds = (0.5, 2.5)

    def __init__(self) -> None:
        self._state = ModelState.LOADING
        self._library: _Library | None = None

    @property
    def state(self) -> ModelState:
        return self._state

    def caches(self) -> dict[str, CacheUse]:
        return {}  # nothing is kept per voice

    @property
    def description(self) -> EngineDescription:
        library = self._library
        return EngineDescription(
            model_type="espeak-ng",
            model_version=library.version if library else "unknown",
            device="cpu",
            model_path=str(Path(library.data)) if library else None,
            capabilities=Capabilities(
                text_to_speech=True,
                voice_cloning=False,
                # Prosody only (rate, pitch, volume), not an emotional voice.
                emotion_control=True,
                multi_language=True,
                real_time=True,
                languages=["zh", "en"],
            ),
        )

    def load(self) -> None:
        try:
            self._library = _Library.get()
        except Exception:
            self._state = ModelState.ERROR
            raise
        self._state = ModelState.READY

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        library = self._library
        if library is None or self._state is not ModelState.READY:
            raise TTSError(ErrorCode.MODEL_NOT_READY, "the espeak engine is not loaded yet; retry shortly")
        warnings: list[str] = []
        if request.reference_audio is not None:
            warnings.append(
                "reference_audio was not used: the espeak engine cannot clone voices "
                "(mount an IndexTTS2 checkpoint for voice cloning)"
            )
        if request.emotion_reference is not None:
            warnings.append(
                "emotion_reference was not used: the espeak engine cannot read emotion from audio"
            )
        vector = request.emotion_vector
        if vector is None and request.emotion_text:
            vector = vector_from_text(request.emotion_text)
            if vector is None:
                warnings.append("emotion_text named no emotion the espeak engine knows; spoken neutrally")
        if request.use_random:
            warnings.append("use_random has no effect on the espeak engine (it is deterministic)")
        prosody = prosody_for(vector, request.emotion_alpha)
        if request.speed != 1.0:
            rate = round(prosody.rate * request.speed)
            prosody = dataclasses.replace(prosody, rate=min(max(rate, MIN_RATE), MAX_RATE))
        segments = split_segments(request.text, request.max_text_tokens_per_segment, pack=audio is None)
        if not segments:
            raise TTSError(
                ErrorCode.INVALID_INPUT, "text: has nothing to speak; give words, not only punctuation"
            )
        pause = np.zeros(int(SEGMENT_PAUSE * library.sample_rate), dtype=np.int16)
        pieces: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        timings: list[SegmentTiming] = []
        offset = 0
        progress(0, len(segments))
        for done, segment in enumerate(segments, start=1):
            try:
                spoken = library.speak(segment, voice_for(segment), prosody)
            except RuntimeError as exc:
                raise TTSError(ErrorCode.PROCESSING_ERROR, f"espeak-ng failed: {exc}") from exc
            for piece in (pause, spoken) if pieces else (spoken,):
                if piece is spoken:
                    timings.append(segment_timing(segment, offset, len(spoken), library.sample_rate))
                offset += len(piece)
                pieces.append(piece)
                if audio is not None:
                    audio(piece, library.sample_rate)
            progress(done, len(segments))
        return SynthesisOutcome(
            samples=np.concatenate(pieces),
            sample_rate=library.sample_rate,
            warnings=warnings,
            segments=timings,
        )
