"""The benchmarks run and report: each part at tiny sizes yields its keys of results.json as finite
numbers. Timings are the bench's business, not the tests': nothing here asserts a figure."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from bench import run
from bench.baseline_celery import redis_server_binary
from bench.stats import JobTiming, busy_fraction, engine_wait, overhead_figures, percentile
from kube_testbed.apiserver import ASSETS_ENV, Assets

# The headline keys of bench/results.json (the first table of bench/README.md).
HEADLINE_KEYS = {
    "overhead_p50_ms_c1",
    "overhead_p99_ms_c1",
    "overhead_p50_ms_c100",
    "overhead_p99_ms_c100",
    "baseline_overhead_p50_ms_c100",
    "baseline_overhead_p99_ms_c100",
    "busy_fraction_w1",
    "busy_fraction_w2",
    "busy_fraction_w4",
    "baseline_busy_fraction_w4",
    "engine_wrapper_overhead_pct",
    "speaker_cache_speedup",
    "model_load_s",
    "indextts2_load_s",
    "indextts2_cpu_ttfa_ms",
    "indextts2_cpu_rtf",
    "indextts25_load_s",
    "indextts25_cpu_ttfa_ms",
    "indextts25_cpu_rtf",
    "espeak_load_ms",
    "espeak_ttfa_ms",
    "espeak_rtf",
    "worker_cold_start_s_espeak",
    "gateway_rss_mb_loaded",
    "growth_rss_mb_round1",
    "growth_rss_mb_round3",
    "growth_statistics_ms_round3",
    "ttfa_ms_p50",
    "ttfa_ms_p99",
    "speech_whole_ms_p50",
    "speech_whole_ms_p99",
    "ttfa_ms_p50_synthetic",
    "k8s_api_requests_per_workflow",
    "k8s_api_writes_per_workflow",
    "k8s_api_deletion_writes_per_workflow",
}
# The part of the bench that produces each.
REQUIRED = {
    "overhead": [
        "overhead_p50_ms_c1",
        "overhead_p99_ms_c1",
        "overhead_p50_ms_c100",
        "overhead_p99_ms_c100",
        "gateway_rss_mb_loaded",
    ],
    "baseline": [
        "baseline_overhead_p50_ms_c100",
        "baseline_overhead_p99_ms_c100",
        "baseline_busy_fraction_w4",
    ],
    "scaling": ["busy_fraction_w1", "busy_fraction_w2", "busy_fraction_w4"],
    "engine": [
        "engine_wrapper_overhead_pct",
        "speaker_cache_speedup",
        "model_load_s",
        "indextts2_load_s",
        "indextts2_cpu_ttfa_ms",
        "indextts2_cpu_rtf",
        "indextts25_load_s",
        "indextts25_cpu_ttfa_ms",
        "indextts25_cpu_rtf",
        "espeak_load_ms",
        "espeak_ttfa_ms",
        "espeak_rtf",
    ],
    "memory": ["worker_cold_start_s_espeak"],
    "growth": ["growth_rss_mb_round1", "growth_rss_mb_round3", "growth_statistics_ms_round3"],
    "speech": [
        "ttfa_ms_p50",
        "ttfa_ms_p99",
        "speech_whole_ms_p50",
        "speech_whole_ms_p99",
        "ttfa_ms_p50_synthetic",
    ],
    "control-plane": [
        "k8s_api_requests_per_workflow",
        "k8s_api_writes_per_workflow",
        "k8s_api_deletion_writes_per_workflow",
    ],
}
# Figures of the control-plane part besides the headline, whatever routes a run shows.
CONTROL_PLANE_KEYS = {
    "k8s_api_workflows",
    "k8s_api_reads_per_workflow",
    "k8s_api_refused",
    "k8s_api_create_ttsworkflows_per_workflow",
    "k8s_api_patch_ttsworkflows_per_workflow",
    "k8s_api_patch_ttsworkflows_status_per_workflow",
    "k8s_api_create_events_per_workflow",
    "k8s_api_service_account_requests_per_workflow",
    "k8s_api_server_own_requests_per_workflow",
    "k8s_api_deletion_requests_per_workflow",
    "k8s_api_deletion_delete_ttsworkflows_per_workflow",
    "k8s_api_idle_requests_per_s",
    "k8s_api_idle_writes_per_s",
    "k8s_workflows_per_s",
}


def test_every_required_key_is_produced_by_a_part_and_listed_in_the_table() -> None:
    produced = {key for keys in REQUIRED.values() for key in keys}
    assert produced == HEADLINE_KEYS
    assert {key for key, _ in run.HEADLINE} >= HEADLINE_KEYS
    assert set(REQUIRED) == set(run.PARTS)


def run_parts(tmp_path: Path, parts: list[str]) -> dict[str, float]:
    results = run.run(quick=True, work_dir=tmp_path / "work", cache_dir=run.CACHE, parts=parts)
    for part in parts:
        missing = [key for key in REQUIRED[part] if key not in results]
        assert not missing, f"{part} did not produce {missing}"
    not_numbers = {key: value for key, value in results.items() if not math.isfinite(value)}
    assert not not_numbers, f"figures that are not finite numbers: {not_numbers}"
    return results


def test_the_control_plane_parts_produce_their_figures(tmp_path: Path) -> None:
    run_parts(tmp_path, ["overhead", "scaling"])


def test_the_growth_part_counts_every_record_it_made(tmp_path: Path) -> None:
    results = run_parts(tmp_path, ["growth"])
    assert results["growth_records_round3"] > results["growth_records_round1"] > 0
    assert results["growth_statistics_tasks_round3"] == results["growth_records_round3"]


def test_the_speech_part_times_the_first_audio_before_the_whole(tmp_path: Path) -> None:
    results = run_parts(tmp_path, ["speech"])
    assert 0 < results["ttfa_ms_p50"] <= results["speech_whole_ms_p50"]
    assert 0 < results["ttfa_ms_p50_synthetic"] <= results["speech_whole_ms_p50_synthetic"]


@pytest.mark.skipif(
    redis_server_binary() is None,
    reason="redis-server is not installed (make bench installs it: apt-get install -y redis-server)",
)
@pytest.mark.skipif(
    importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None,
    reason="the bench extra (celery, redis) is not installed (make bench installs it)",
)
def test_the_celery_baseline_produces_its_figures(tmp_path: Path) -> None:
    run_parts(tmp_path, ["baseline"])


@pytest.mark.slow
def test_the_engine_and_memory_parts_produce_their_figures(tmp_path: Path) -> None:
    results = run_parts(tmp_path, ["engine", "memory"])
    assert {"worker_rss_mb_espeak", "worker_hwm_mb_espeak"} <= results.keys()
    assert results["worker_cold_start_s_espeak"] > 0
    assert results["indextts2_cpu_ttfa_ms"] > 0
    assert results["indextts25_cpu_ttfa_ms"] > 0
    assert results["indextts25_cpu_rtf"] > 0
    assert results["espeak_ttfa_ms"] > 0


def test_the_kubernetes_api_cost_part_produces_its_figures(tmp_path: Path, kube_assets: Assets) -> None:
    """On a real API server of its own (the fixture fails the test when there are no binaries)."""
    results = run_parts(tmp_path, ["control-plane"])
    missing = CONTROL_PLANE_KEYS - results.keys()
    assert not missing, f"not reported: {sorted(missing)}"


def test_the_kubernetes_api_cost_part_fails_without_an_api_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))  # a directory without etcd or kube-apiserver
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--parts", "control-plane", "--out", str(out)]) == 2
    assert "needs a real Kubernetes API server" in capsys.readouterr().err
    assert not out.exists()


def test_the_command_writes_a_flat_results_file(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--parts", "memory", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written
    assert all(isinstance(value, float | int) for value in written.values())


# --- the arithmetic behind the figures -------------------------------------------------------------


def job(submitted: float, started: float, finished: float, received: float) -> JobTiming:
    return JobTiming(submitted, started, finished, received)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0], 50, 1.0), ([1.0, 2.0, 3.0], 50, 2.0), ([0.0, 10.0], 99, 9.9), ([3.0, 1.0, 2.0], 0, 1.0)],
)
def test_percentile_interpolates_between_ranks(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_time_queued_behind_a_busy_engine_is_not_overhead() -> None:
    # One engine: the second job waits 1 s while the first runs, then starts 0.1 s after it ends.
    jobs = [job(0.0, 0.0, 1.0, 1.0), job(0.0, 1.1, 2.1, 2.1)]
    assert engine_wait(jobs, capacity=1) == pytest.approx([0.0, 1.0])
    assert engine_wait(jobs, capacity=2) == pytest.approx([0.0, 0.0])
    figures = overhead_figures(jobs, 1.0, 1, "c2")
    assert figures["overhead_p50_ms_c2"] == pytest.approx(50.0)  # 0 and 100 ms: the gap is overhead


def test_busy_fraction_is_work_per_worker_over_the_span() -> None:
    jobs = [job(0.0, 0.0, 1.0, 1.0), job(0.0, 0.0, 1.0, 1.0), job(0.0, 1.0, 2.0, 2.0)]
    assert busy_fraction(jobs, 1.0, workers=2) == pytest.approx(0.75)
    assert busy_fraction(jobs, 1.0, workers=1) == pytest.approx(1.5)


def test_our_overhead_is_reported_over_the_baseline_where_both_exist() -> None:
    results = {
        "overhead_p50_ms_c1": 10.0,
        "baseline_overhead_p50_ms_c1": 5.0,
        "overhead_p99_ms_c1": 20.0,
        "busy_fraction_w4": 0.9,
        "baseline_busy_fraction_w4": 0.2,
    }
    assert run.versus_baseline(results) == {"overhead_vs_baseline_p50_ms_c1": 2.0}
