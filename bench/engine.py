"""Engine speed: the project's ``indextts2`` engine against a direct ``IndexTTS2.infer`` call on the
same random-weight checkpoint, text and settings; a speaker-cache hit against a miss; the model's load
time (what reloading the model in every task, as the Celery design does, costs every job); the
``indextts25`` engine's load time, time to first audio and real-time factor on its own random-weight
checkpoint; and the ``espeak`` engine's.

The checkpoints are the tests' (``tests/inference_pod/checkpoint_builder.py`` and
``checkpoint_builder25.py``), built once into ``.cache/bench/`` by child processes; ``HF_HUB_OFFLINE``
and ``HF_HOME`` are set before ``indextts`` is first imported, so the hub is never asked.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from inference_pod.engines.base import SynthesisRequest

TEXT = "你好，这是一个测试。今天天气真好，我们去公园散步吧。"
# Random GPT weights never emit the stop token: keep generation short, as the tests do.
GENERATION = {"max_mel_tokens": 20, "num_beams": 1}
ESPEAK_TEXTS = (
    "你好，这是IndexTTS2生成的语音。今天天气真好，心情很愉快！",
    "Hello, this is a test of the speech engine. The weather is lovely today.",
    "这是使用音色克隆生成的语音。我们去公园散步吧。",
    "Benchmarks print figures and assert nothing; tests assert behaviour.",
)


def checkpoint(cache_dir: Path) -> tuple[Path, Path]:
    """The random-weight checkpoint's model directory and hub cache, built once (in a child process)."""
    root = _built(cache_dir / "checkpoint", "tests.inference_pod.checkpoint_builder")
    return root / "model", root / "hf_home"


def checkpoint25(cache_dir: Path) -> Path:
    """The random-weight IndexTTS-2.5 checkpoint (its auxiliary models inside), built once."""
    return _built(cache_dir / "checkpoint25", "tests.inference_pod.checkpoint_builder25") / "model"


def _built(root: Path, builder: str) -> Path:
    """``root``, once ``python -m <builder> root`` has filled it (offline, in a child process)."""
    done = root / ".complete"
    if not done.exists():
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(root / "hf_home")}
        command = [sys.executable, "-m", builder, str(root)]
        repo = Path(__file__).resolve().parent.parent
        subprocess.run(command, check=True, env=env, cwd=repo, stdout=subprocess.DEVNULL, timeout=600)  # noqa: S603
        done.touch()
    return root


def write_voice(path: Path, seconds: float, pitch: float = 140.0) -> Path:
    """A short voiced sound (harmonics of ``pitch``) as reference audio; distinct per pitch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sum([np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8)], axis=0)
    soundfile.write(str(path), (0.2 * tone).astype(np.float32), rate)
    return path


def _seeded() -> None:
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def _timed(call: Callable[[], Any]) -> float:
    _seeded()
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def measure(cache_dir: Path, *, repeats: int = 9) -> dict[str, float]:
    """Every engine figure; the package's progress bars and prints are kept off the table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return _measure(cache_dir, repeats)


def _measure(cache_dir: Path, repeats: int) -> dict[str, float]:
    model_dir, hf_home = checkpoint(cache_dir)
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(hf_home)})
    results: dict[str, float] = {}
    began = time.perf_counter()
    from indextts import IndexTTS2

    from inference_pod.engines.indextts2 import IndexTTS2Engine, infer_arguments

    results["indextts_import_s"] = time.perf_counter() - began

    engine = IndexTTS2Engine(
        model_dir,
        hf_home=hf_home,
        device="cpu",
        cache_size=4,
        language="zh",
        nemo_cache_dir=cache_dir / "nemo_cache",  # compiled once (zh ~2 s), then read
        max_mel_tokens=GENERATION["max_mel_tokens"],
        num_beams=GENERATION["num_beams"],
    )
    began = time.perf_counter()
    engine.load()
    results["indextts2_load_s"] = time.perf_counter() - began
    # The Celery design loads the model in every task: this is what each of its jobs pays before synthesis.
    began = time.perf_counter()
    direct = IndexTTS2(
        model_dir=str(model_dir),
        cfg_path=str(model_dir / "config.yaml"),
        use_fp16=False,
        device="cpu",
        use_cuda_kernel=False,
        language="zh",
    )
    results["model_load_s"] = time.perf_counter() - began

    voices = cache_dir / "voices"
    voice = write_voice(voices / "speaker.wav", 1.5)
    request = SynthesisRequest(text=TEXT, reference_audio=voice)
    arguments = {**infer_arguments(request, voice), **GENERATION}

    def through_engine() -> None:
        engine.synthesize(request, lambda done, total: None)

    def speak_with(reference: Path) -> None:
        engine.synthesize(SynthesisRequest(text=TEXT, reference_audio=reference), lambda done, total: None)

    def direct_call() -> None:
        direct.infer(**arguments)

    for _ in range(2):  # warm both, and both speaker caches
        through_engine()
        direct_call()
    wrapped, plain = [], []
    for _ in range(repeats):  # interleaved, so that drift on a shared machine hits both alike
        wrapped.append(_timed(through_engine))
        plain.append(_timed(direct_call))
    results["engine_infer_ms"] = 1000 * statistics.median(wrapped)
    results["direct_infer_ms"] = 1000 * statistics.median(plain)
    results["engine_wrapper_overhead_pct"] = 100 * (statistics.median(wrapped) / statistics.median(plain) - 1)

    misses, hits = [], []
    for index in range(repeats):
        other = write_voice(voices / f"miss-{index}.wav", 1.5, pitch=150.0 + 7 * index)
        misses.append(_timed(functools.partial(speak_with, other)))
        hits.append(_timed(through_engine))
    results["speaker_cache_miss_ms"] = 1000 * statistics.median(misses)
    results["speaker_cache_hit_ms"] = 1000 * statistics.median(hits)
    results["speaker_cache_speedup"] = statistics.median(misses) / statistics.median(hits)
    first, ratios = [], []
    for _ in range(repeats):
        ttfa, rtf = streamed(engine, SynthesisRequest(text=TEXT, reference_audio=voice))
        first.append(ttfa)
        ratios.append(rtf)
    results["indextts2_cpu_ttfa_ms"] = 1000 * statistics.median(first)
    results["indextts2_cpu_rtf"] = statistics.median(ratios)
    results.update(indextts25_figures(cache_dir, voice, repeats=repeats))
    results.update(espeak_figures(repeats=repeats))
    return results


def indextts25_figures(cache_dir: Path, voice: Path, *, repeats: int) -> dict[str, float]:
    """The IndexTTS-2.5 engine on its random-weight checkpoint, with the same generation limits as
    IndexTTS2's: ``load()``, then time to the first streamed segment and seconds per audio second."""
    from inference_pod.engines.indextts25 import IndexTTS25Engine

    engine = IndexTTS25Engine(
        checkpoint25(cache_dir),
        device="cpu",
        max_mel_tokens=GENERATION["max_mel_tokens"],
        num_beams=GENERATION["num_beams"],
        text_normalization=False,  # as the tests run it: NeMo's grammars are IndexTTS2's figure
    )
    began = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - began
    request = SynthesisRequest(text=TEXT, reference_audio=voice, language="zh")
    streamed(engine, request)  # warm its speaker and emotion caches
    first, ratios = [], []
    for _ in range(repeats):
        ttfa, rtf = streamed(engine, request)
        first.append(ttfa)
        ratios.append(rtf)
    return {
        "indextts25_load_s": load_s,
        "indextts25_cpu_ttfa_ms": 1000 * statistics.median(first),
        "indextts25_cpu_rtf": statistics.median(ratios),
    }


def streamed(engine: Any, request: SynthesisRequest) -> tuple[float, float]:
    """Seconds to the first piece of audio, and synthesis seconds per audio second."""
    _seeded()
    began = time.perf_counter()
    first: list[float] = []

    def audio(samples: Any, rate: int) -> None:
        if not first:
            first.append(time.perf_counter() - began)

    outcome = engine.synthesize(request, lambda done, total: None, audio)
    elapsed = time.perf_counter() - began
    return first[0] if first else elapsed, elapsed / max(outcome.duration, 1e-9)


def espeak_figures(*, repeats: int = 5) -> dict[str, float]:
    """The espeak engine's load time, time to first audio (two sentences, streamed), and synthesis
    seconds per audio second over Chinese and English sentences."""
    from inference_pod.engines.espeak import EspeakEngine

    engine = EspeakEngine()
    began = time.perf_counter()
    engine.load()
    load_ms = 1000 * (time.perf_counter() - began)
    first = [streamed(engine, SynthesisRequest(text=ESPEAK_TEXTS[1]))[0] for _ in range(repeats)]
    ratios = []
    for _ in range(repeats):
        synthesis = audio = 0.0
        for text in ESPEAK_TEXTS:
            began = time.perf_counter()
            outcome = engine.synthesize(SynthesisRequest(text=text), lambda done, total: None)
            synthesis += time.perf_counter() - began
            audio += outcome.duration
        ratios.append(synthesis / audio)
    return {
        "espeak_load_ms": load_ms,
        "espeak_ttfa_ms": 1000 * statistics.median(first),
        "espeak_rtf": statistics.median(ratios),
    }
