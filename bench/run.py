"""``make bench``: every measurement in one run, a table on stdout, ``bench/results.json``.

    python -m bench.run                 # the full run (a few minutes on 2 cores)
    python -m bench.run --quick         # tiny sizes: proves it runs (the smoke test uses this)
    python -m bench.run --parts control-plane   # one part (the Kubernetes API's cost per workflow)

Benchmarks print figures and assert nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import baseline_celery, control_plane, engine, growth, memory, overhead, scaling, speech

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"
CACHE = REPO / ".cache" / "bench"

# The headline keys, in the table's order, with their targets where one is set.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("overhead_p50_ms_c1", ""),
    ("overhead_p99_ms_c1", ""),
    ("overhead_p50_ms_c100", "<= 20, <= baseline"),
    ("overhead_p99_ms_c100", "<= 100, <= baseline"),
    ("overhead_p50_ms_c100_long", "(c100 at a 4 s service time) <= 20"),
    ("overhead_p99_ms_c100_long", "(c100 at a 4 s service time) <= 100"),
    ("baseline_overhead_p50_ms_c100", ""),
    ("baseline_overhead_p99_ms_c100", ""),
    ("busy_fraction_w1", ""),
    ("busy_fraction_w2", ""),
    ("busy_fraction_w4", ">= 0.97"),
    ("busy_fraction_w4_long", "(1 s service time) >= 0.97"),
    ("baseline_busy_fraction_w4", ""),
    ("engine_wrapper_overhead_pct", "<= 2"),
    ("speaker_cache_speedup", ""),
    ("model_load_s", ""),
    ("indextts2_load_s", "(random weights, CPU)"),
    ("indextts2_cpu_ttfa_ms", "(random weights: time, not speech)"),
    ("indextts2_cpu_rtf", "(random weights)"),
    ("indextts25_load_s", "(random weights, CPU)"),
    ("indextts25_cpu_ttfa_ms", "(random weights: time, not speech)"),
    ("indextts25_cpu_rtf", "(random weights)"),
    ("espeak_load_ms", ""),
    ("espeak_ttfa_ms", ""),
    ("espeak_rtf", ""),
    ("worker_cold_start_s_espeak", "(process start to first job taken)"),
    ("worker_cold_start_s_indextts2", "(random weights, CPU)"),
    ("worker_cold_start_s_indextts25", "(random weights, CPU)"),
    ("gateway_rss_mb_loaded", ""),
    ("growth_rss_mb_round1", "(local stack, after 30 s of 100 clients)"),
    ("growth_rss_mb_round3", "(after 90 s) level with round 1"),
    ("growth_statistics_ms_round3", "(over every record kept)"),
    ("ttfa_ms_p50", "(three sentences, espeak)"),
    ("ttfa_ms_p99", ""),
    ("speech_whole_ms_p50", ""),
    ("speech_whole_ms_p99", ""),
    ("ttfa_ms_p50_synthetic", "(200 ms a segment) before the second segment: < 400"),
    ("k8s_api_requests_per_workflow", ""),
    ("k8s_api_writes_per_workflow", ""),
    ("k8s_api_deletion_writes_per_workflow", ""),
)


def machine() -> dict[str, float | str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "load_average": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


PARTS = ("overhead", "baseline", "scaling", "engine", "memory", "growth", "speech", "control-plane")


def run(*, quick: bool, work_dir: Path, cache_dir: Path, parts: Sequence[str] = PARTS) -> dict[str, float]:
    """Every figure of ``parts`` (``quick``: tiny sizes and service times, to prove the code runs)."""
    service = 0.02 if quick else 0.05
    per_level = {1: 3, 10: 10, 100: 30} if quick else {1: 100, 10: 300, 100: 600}
    scaling_jobs, scaling_service = (12, 0.02) if quick else (200, 0.1)
    steps: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {
        "overhead": (
            "control-plane overhead (local mode)",
            lambda: overhead.measure(
                work_dir / "overhead",
                service_seconds=service,
                jobs=per_level,
                warmup=3 if quick else 20,
                max_workers=4 if quick else None,
                long_service_seconds=None if quick else 4.0,
            ),
        ),
        "baseline": (
            "the Celery + Redis design (global GPU lock)",
            lambda: baseline_celery.measure(
                service_seconds=service,
                jobs=per_level,
                scaling_jobs=scaling_jobs,
                scaling_service_seconds=scaling_service,
                warmup=3 if quick else 10,
                max_concurrency=4 if quick else None,
            ),
        ),
        "scaling": (
            "throughput scaling (local mode)",
            lambda: scaling.measure(
                work_dir / "scaling",
                jobs=scaling_jobs,
                service_seconds=scaling_service,
                long_service_seconds=None if quick else 1.0,
            ),
        ),
        "engine": (
            "engine (IndexTTS2 and IndexTTS-2.5 on random weights; espeak)",
            lambda: engine.measure(cache_dir, repeats=1 if quick else 15),
        ),
        "memory": (
            "worker memory",
            lambda: worker_memory(work_dir / "memory", cache_dir, indextts2=not quick),
        ),
        "growth": (
            "local mode's memory and statistics as records pile up",
            lambda: growth.measure(
                work_dir / "growth",
                rounds=3,
                round_seconds=2.0 if quick else 30.0,
                clients=4 if quick else 100,
                idle_seconds=0.5 if quick else 10.0,
            ),
        ),
        "speech": (
            "time to first audio on /v1/audio/speech (espeak, local mode)",
            lambda: speech.measure(
                work_dir / "speech", requests=5 if quick else 60, warmup=1 if quick else 5
            ),
        ),
        "control-plane": (
            "the Kubernetes API's cost per workflow (a real kube-apiserver)",
            lambda: control_plane.measure(
                workflows=10 if quick else 100,
                idle_seconds=1.0 if quick else 5.0,
                warmup=1 if quick else 2,
            ),
        ),
    }
    results: dict[str, float] = {}
    for part in parts:
        title, step = steps[part]
        began = time.monotonic()
        print(f"-- {title} ...", file=sys.stderr, flush=True)
        results.update(step())
        print(f"   done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    results.update(versus_baseline(results))
    return results


def versus_baseline(results: dict[str, float]) -> dict[str, float]:
    """Our overhead over the baseline's, wherever both were measured (below 1: ours is smaller)."""
    ratios = {}
    for key, ours in results.items():
        theirs = results.get(f"baseline_{key}")
        if key.startswith("overhead_p") and theirs:
            ratios[key.replace("overhead_", "overhead_vs_baseline_", 1)] = ours / theirs
    return ratios


def worker_memory(work_dir: Path, cache_dir: Path, *, indextts2: bool = True) -> dict[str, float]:
    """A worker process alone: with espeak, and (unless ``indextts2`` is False) with IndexTTS2 on the
    random-weight checkpoint."""
    espeak = memory.worker_rss(work_dir / "espeak", engine="espeak")
    figures = {
        "worker_rss_mb_espeak": espeak["rss"],
        "worker_hwm_mb_espeak": espeak["hwm"],
        "worker_cold_start_s_espeak": memory.worker_cold_start(work_dir / "cold-espeak", engine="espeak"),
    }
    if not indextts2:
        return figures
    model_dir, hf_home = engine.checkpoint(cache_dir)
    voice = str(engine.write_voice(work_dir / "voice.wav", 1.5))
    generation = {
        "TTS_WORKER_MAX_MEL_TOKENS": "20",
        "TTS_WORKER_NUM_BEAMS": "1",
        "TTS_WORKER_DEFAULT_VOICE": voice,
    }
    indextts2_env = {
        **generation,
        "TTS_WORKER_CHECKPOINT_DIR": str(model_dir),
        "TTS_WORKER_HF_HOME": str(hf_home),
        "TTS_WORKER_TEXT_LANGUAGE": "zh",
        "TTS_WORKER_NEMO_CACHE_DIR": str(cache_dir / "nemo_cache"),
    }
    model = memory.worker_rss(work_dir / "indextts2", engine="indextts2", env=indextts2_env, text=engine.TEXT)
    indextts25_env = {
        **generation,
        "TTS_WORKER_CHECKPOINT_DIR": str(engine.checkpoint25(cache_dir)),
        "TTS_WORKER_TEXT_NORMALIZATION": "false",
    }
    return {
        **figures,
        "worker_rss_mb_indextts2": model["rss"],
        "worker_hwm_mb_indextts2": model["hwm"],
        "worker_cold_start_s_indextts2": memory.worker_cold_start(
            work_dir / "cold-indextts2", engine="indextts2", env=indextts2_env
        ),
        "worker_cold_start_s_indextts25": memory.worker_cold_start(
            work_dir / "cold-indextts25", engine="indextts25", env=indextts25_env
        ),
    }


def table(results: dict[str, float], about: dict[str, float | str]) -> str:
    lines = [
        f"machine: {about['cpu']}, {about['cores']} cores, {about['memory_gb']} GB, Python {about['python']}"
        f" (load average at the start: {about['load_average']})",
        "",
        f"{'figure':<40} {'value':>12}  target",
        f"{'-' * 40} {'-' * 12}  {'-' * 20}",
    ]
    for key, target in HEADLINE:
        lines.append(f"{key:<40} {_number(results.get(key, math.nan)):>12}  {target}")
    lines += ["", "all figures:"]
    lines += [f"  {key:<48} {_number(value):>12}" for key, value in sorted(results.items())]
    return "\n".join(lines)


def markdown(results: dict[str, float]) -> str:
    """The headline keys, then every other figure, as Markdown tables (for bench/README.md)."""
    lines = ["| key | value | target |", "| --- | ---: | --- |"]
    lines += [f"| `{key}` | {_number(results.get(key, math.nan))} | {target} |" for key, target in HEADLINE]
    headline = {key for key, _ in HEADLINE}
    lines += ["", "| other figures | value |", "| --- | ---: |"]
    lines += [
        f"| `{key}` | {_number(value)} |" for key, value in sorted(results.items()) if key not in headline
    ]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the code runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (default bench/results.json)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated parts to run (default: all)"
    )
    parser.add_argument(
        "--markdown", type=Path, help="print this results file as Markdown tables, and run nothing"
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    about = machine()
    with tempfile.TemporaryDirectory(prefix="indextts-bench-") as work:
        parts = [part.strip() for part in args.parts.split(",") if part.strip()]
        try:
            results = run(quick=args.quick, work_dir=Path(work), cache_dir=CACHE, parts=parts)
        except control_plane.NoApiServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    print(table(results, about))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
