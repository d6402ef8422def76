"""Outputs on a real shared volume: faults of the volume, whose file an output is, and a second attempt.

The worker runs for real against a real nats-server; the volume is a real directory, and where a
fault needs one, a tmpfs mounted over the output folder (read-only, or a few hundred KB to be full).
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from inference_pod.audio_output import write_failure, write_wav
from inference_pod.engines.base import AudioCallback, ProgressCallback, SynthesisOutcome, SynthesisRequest
from inference_pod.engines.synthetic import SyntheticEngine
from inference_pod.outcomes import FinalError, after_failure
from inference_pod.output_cleanup import delete_output
from inference_pod.worker import Worker
from tests.inference_pod.conftest import Bus, WorkerStarter, fast_settings, speech_job
from tests.operator.cluster import eventually
from tests.tmpfs import mounted_tmpfs
from tts_api.constants import TaskName
from tts_api.errors import ErrorCode
from tts_api.messages import JobMessage, WorkflowRef, make_job_id
from tts_api.nats_names import JOBS_STREAM
from tts_api.output_deletion import OUTPUT_DELETION_SUBJECT, DeleteOutput, encode_deletion
from tts_api.outputs import OutputMark, read_mark
from tts_api.policy import ValidationPolicy
from tts_api.request import IndexTTSConfig
from tts_api.results import SpeechResult


class CountingEngine(SyntheticEngine):
    """The synthetic engine, counting its syntheses."""

    def __init__(self) -> None:
        super().__init__(delay_seconds=0)
        self.syntheses = 0

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        self.syntheses += 1
        return super().synthesize(request, progress, audio)


def output_folder(share: Path) -> Path:
    folder = share / "workflows" / "output"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- the volume's faults -------------------------------------------------------------------------


async def test_a_read_only_volume_fails_at_once_saying_so_and_is_not_retried(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    with mounted_tmpfs(output_folder(share), "300k", "ro"):
        engine = CountingEngine()
        await start_worker(engine)
        job = speech_job("ro", policy)
        await bus.publish(job)
        failed = await bus.failed(job.job_id)
    assert failed.error.code is ErrorCode.PROCESSING_ERROR
    assert "read-only" in failed.error.message
    assert "EROFS" in failed.error.message
    assert failed.retryable is False  # an operator must remount it; a retry seconds later cannot help
    assert engine.syntheses == 0  # refused before a synthesis was spent


async def test_a_full_volume_says_how_much_is_free_and_is_not_retried(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    with mounted_tmpfs(output_folder(share), "300k"):
        engine = CountingEngine()
        await start_worker(engine)
        job = speech_job("full", policy)
        await bus.publish(job)
        failed = await bus.failed(job.job_id)
    assert failed.error.code is ErrorCode.PROCESSING_ERROR
    assert "is full" in failed.error.message
    assert "bytes free" in failed.error.message
    assert "ENOSPC" in failed.error.message
    assert failed.retryable is False
    assert engine.syntheses == 0


def test_a_write_that_fills_the_volume_leaves_the_previous_file_whole_and_no_part(
    policy: ValidationPolicy, share: Path
) -> None:
    """The real ENOSPC of a write (the volume filled during the synthesis): reported with the errno
    and the sizes; the previous audio is still there, whole, and no temporary file is left."""
    mark = OutputMark(workflow_uid="uid-1", namespace="default", name="wf", stage="speech")
    with mounted_tmpfs(output_folder(share), "300k") as folder:
        small = np.zeros(1000, dtype=np.int16)
        write_wav(policy.shared_root, "/share/workflows/output/a.wav", small, 16000, mark)
        before = (folder / "a.wav").read_bytes()
        big = np.ones(400_000, dtype=np.int16)  # 800 KB: more than the 300 KB volume holds
        with pytest.raises(OSError, match="No space left") as raised:
            write_wav(policy.shared_root, "/share/workflows/output/a.wav", big, 16000, mark)
        assert raised.value.errno == errno.ENOSPC
        assert (folder / "a.wav").read_bytes() == before
        assert sorted(os.listdir(folder)) == ["a.wav"]
    error = write_failure(raised.value.errno, "/share/workflows/output/a.wav", 1234, 800_044)
    assert isinstance(error, FinalError)
    assert "1,234 bytes free, 800,044 needed" in error.message
    assert after_failure(error).retryable is False


def test_a_name_as_long_as_the_volume_allows_is_written(policy: ValidationPolicy, share: Path) -> None:
    """The temporary name is short: it must fit where the output's own name just does."""
    name = "n" * 251 + ".wav"  # 255 bytes, NAME_MAX
    mark = OutputMark(workflow_uid="uid-1", stage="speech")
    target = write_wav(
        policy.shared_root, f"/share/workflows/output/{name}", np.zeros(100, np.int16), 16000, mark
    )
    assert target.name == name
    assert read_mark(target) == mark


async def test_a_name_longer_than_the_volume_allows_is_the_users_mistake(
    bus: Bus, start_worker: WorkerStarter
) -> None:
    """Made past the gateway (a lexical policy of none): the worker refuses it, final, naming the field."""
    await start_worker(SyntheticEngine(delay_seconds=0))
    config = IndexTTSConfig.model_construct(
        text="hi", output_path="/share/workflows/output/" + "x" * 300 + ".wav"
    )
    job = JobMessage(
        job_id=make_job_id("long", TaskName.GENERATE_SPEECH, 1),
        workflow=WorkflowRef(uid="long", name="wf-long", namespace="default"),
        task=TaskName.GENERATE_SPEECH,
        attempt=1,
        config=config,
    )
    await bus.publish(job)
    failed = await bus.failed(job.job_id)
    assert failed.error.code is ErrorCode.INVALID_INPUT
    assert "output_path" in failed.error.message
    assert "NAME_MAX" in failed.error.message
    assert failed.retryable is False


# --- a second attempt finds its own audio ------------------------------------------------------------


async def test_an_attempt_that_finds_its_stages_audio_reports_it_without_synthesizing(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    """Attempt 1 wrote the WAV, but its report was lost (its worker died): attempt 2 reports the same
    result from the WAV's mark and leaves the file as it is; nothing is synthesized again."""
    engine = CountingEngine()
    await start_worker(engine)
    first = speech_job("again", policy)
    await bus.publish(first)
    done = SpeechResult.model_validate((await bus.completed(first.job_id)).output)
    wav = share / "workflows" / "output" / "again.wav"
    written = wav.stat()
    second = speech_job("again", policy, attempt=2)
    await bus.publish(second)
    again = SpeechResult.model_validate((await bus.completed(second.job_id)).output)
    assert again == done
    assert engine.syntheses == 1
    assert (wav.stat().st_ino, wav.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    mark = read_mark(wav)
    assert mark is not None
    assert (mark.workflow_uid, mark.job_id) == ("again", first.job_id)
    assert mark.stage == TaskName.GENERATE_SPEECH.short


# --- whose file an output is ----------------------------------------------------------------------------


async def test_a_file_the_service_did_not_write_is_never_written_over(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    theirs = output_folder(share) / "theirs.wav"
    soundfile.write(theirs, np.zeros(1600, dtype=np.int16), 16000)
    before = theirs.read_bytes()
    await start_worker(SyntheticEngine(delay_seconds=0))
    job = speech_job("theirs", policy, output_path="/share/workflows/output/theirs.wav")
    await bus.publish(job)
    failed = await bus.failed(job.job_id)
    assert failed.error.code is ErrorCode.INVALID_INPUT
    assert failed.error.message.startswith("output_path:")
    assert "not written by this service" in failed.error.message
    assert theirs.read_bytes() == before


async def test_another_workflows_audio_is_never_written_over(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=0))
    first = speech_job("first", policy, output_path="/share/workflows/output/shared.wav")
    await bus.publish(first)
    await bus.completed(first.job_id)
    wav = share / "workflows" / "output" / "shared.wav"
    before = wav.read_bytes()
    second = speech_job("second", policy, output_path="/share/workflows/output/shared.wav")
    await bus.publish(second)
    failed = await bus.failed(second.job_id)
    assert failed.error.code is ErrorCode.INVALID_INPUT
    assert "holds the audio of workflow default/wf-first (uid first)" in failed.error.message
    assert "choose another output_path" in failed.error.message
    assert wav.read_bytes() == before


async def test_with_per_namespace_folders_a_namespace_writes_only_in_its_own(
    bus: Bus, nats_url: str, share: Path
) -> None:
    strict = ValidationPolicy(shared_dir=share, output_per_namespace=True)
    worker = Worker(
        settings=fast_settings(nats_url), policy=strict, engine=SyntheticEngine(0), presets={}, slot="cpu0"
    )
    running = asyncio.create_task(worker.run())
    try:
        elsewhere = speech_job("ns1", strict, output_path="/share/workflows/output/other/x.wav")
        own = speech_job("ns2", strict, output_path="/share/workflows/output/default/x.wav")
        await bus.publish(elsewhere)
        await bus.publish(own)
        refused = await bus.failed(elsewhere.job_id)
        await bus.completed(own.job_id)
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 15)
    assert refused.error.code is ErrorCode.INVALID_INPUT
    assert "/share/workflows/output/default/" in refused.error.message
    assert (share / "workflows" / "output" / "default" / "x.wav").is_file()


# --- deleting a deleted workflow's audio -------------------------------------------------------------


async def test_a_deletion_request_deletes_only_the_named_workflows_audio(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=0))
    job = speech_job("kept", policy, output_path="/share/workflows/output/kept.wav")
    await bus.publish(job)
    await bus.completed(job.job_id)
    wav = share / "workflows" / "output" / "kept.wav"
    theirs = output_folder(share) / "theirs.wav"
    soundfile.write(theirs, np.zeros(160, dtype=np.int16), 16000)
    for uid, path in [("someone-else", "kept.wav"), ("kept", "theirs.wav"), ("kept", "missing.wav")]:
        request = DeleteOutput(
            workflow=WorkflowRef(uid=uid, name="x"), output_path=f"/share/workflows/output/{path}"
        )
        await bus.js.publish(OUTPUT_DELETION_SUBJECT, encode_deletion(request))
    request = DeleteOutput(workflow=job.workflow, output_path="/share/workflows/output/kept.wav")
    await bus.js.publish(
        OUTPUT_DELETION_SUBJECT, encode_deletion(request), headers={"Nats-Msg-Id": request.message_id}
    )
    await bus.wait_for(lambda: not wav.exists())
    assert theirs.is_file()

    async def all_acknowledged() -> bool:  # the file goes just before its request's ack
        return (await bus.js.stream_info(JOBS_STREAM)).state.messages == 0

    await eventually(all_acknowledged, within=10, what="every deletion request taken and acknowledged")


def test_the_decision_says_why_a_file_is_kept(policy: ValidationPolicy, share: Path) -> None:
    mark = OutputMark(workflow_uid="owner", namespace="n", name="w", stage="generate_speech")
    write_wav(policy.shared_root, "/share/workflows/output/a.wav", np.zeros(10, np.int16), 16000, mark)
    other = DeleteOutput(
        workflow=WorkflowRef(uid="other", name="o"), output_path="/share/workflows/output/a.wav"
    )
    assert delete_output(policy.shared_root, other) == "kept: it holds the audio of workflow n/w (uid owner)"
    outside = DeleteOutput(workflow=WorkflowRef(uid="owner", name="w"), output_path="/etc/passwd.wav")
    assert delete_output(policy.shared_root, outside).startswith("kept: must be under the shared root")
    own = DeleteOutput(
        workflow=WorkflowRef(uid="owner", name="w"), output_path="/share/workflows/output/a.wav"
    )
    assert delete_output(policy.shared_root, own) == "deleted"
    assert delete_output(policy.shared_root, own) == "already gone"
