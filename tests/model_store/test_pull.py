"""``indextts-k8s models pull`` and ``models list`` as a user runs them, against a local server that
answers as the hub does (``HF_ENDPOINT``): a full pull of exactly the engine's files, a connection cut
mid-file resumed, a stopped pull finished by the next one, a damaged file found and fetched again, a
missing repository and a token the hub wants said plainly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from model_store.catalog import INDEXTTS_2
from model_store.inventory import locate, missing_files
from tests.model_store.fake_hub import COMMIT, Hub, serving

CHECKPOINT = INDEXTTS_2.checkpoint.repo
WEIGHTS = (".pth", ".pt", ".safetensors", ".bin", ".model")
TOKEN = "hf_" + "test" * 8  # what the fake hub wants: never to be printed


def contents() -> dict[str, dict[str, bytes]]:
    """Every file the engine reads, small: weights as large (LFS) files, the rest as text."""
    repos: dict[str, dict[str, bytes]] = {}
    for group in (INDEXTTS_2.checkpoint, *INDEXTTS_2.auxiliaries):
        files = repos.setdefault(group.repo, {})
        for index, name in enumerate(group.files):
            if name.endswith(WEIGHTS):
                files[name] = os.urandom(40_000 + 997 * index)
            else:
                files[name] = f"{group.repo} {name}\n".encode()
    repos[CHECKPOINT]["README.md"] = b"not read by the engine: never pulled\n"
    repos[CHECKPOINT]["config.yaml"] = yaml.safe_dump(
        {
            "gpt_checkpoint": "gpt.pth",
            "s2mel_checkpoint": "s2mel.pth",
            "w2v_stat": "wav2vec2bert_stats.pt",
            "emo_matrix": "feat2.pt",
            "spk_matrix": "feat1.pt",
            "dataset": {"bpe_model": "bpe.model"},
            "qwen_emo_path": "qwen0.6bemo4-merge/",
            "vocoder": {"type": "bigvgan", "name": "nvidia/bigvgan_v2_22khz_80band_256x"},
        }
    ).encode()
    return repos


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serving(Hub(contents())) as running:
        yield running


def models(hub: Hub, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    # As a user's shell would have it: none of the hub settings an engine loaded in this process set.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(Path(args[-1]).parent / "hf-home"))
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run(  # noqa: S603 (this interpreter)
        [sys.executable, "-m", "tts_cli.main", "models", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_pull_fetches_exactly_the_engines_files_and_the_folder_lists_complete(
    hub: Hub, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    pulled = models(hub, "pull", "indextts-2", "--dir", str(root))
    assert pulled.returncode == 0, pulled.stderr
    folder = root / "indextts-2"
    for group in (INDEXTTS_2.checkpoint, *INDEXTTS_2.auxiliaries):
        for name in group.files:
            path = locate(INDEXTTS_2, folder, group, name)
            assert path is not None, f"{group.repo}/{name}"
            assert path.read_bytes() == hub.repos[group.repo][name]
    assert (folder / "gpt.pth").is_file()  # the checkpoint as its repository lays it out
    snapshot = folder / "hf_cache" / "hub" / "models--funasr--campplus" / "snapshots" / COMMIT
    assert (snapshot / "campplus_cn_common.bin").is_file()  # where the engine reads it offline
    assert (folder / ".complete").is_file()
    assert missing_files(INDEXTTS_2, folder) == []
    fetched = {target for method, target, _ in hub.requests if method == "GET"}
    assert f"{CHECKPOINT}/README.md" not in fetched
    assert len(fetched) == sum(len(group.files) for group in (INDEXTTS_2.checkpoint, *INDEXTTS_2.auxiliaries))
    assert "[1/" in pulled.stderr
    assert "indextts-2: complete" in pulled.stderr

    listed = models(hub, "list", "--dir", str(root))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("indextts-2\tcomplete\t")

    again = models(hub, "pull", "indextts-2", "--dir", str(root))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already here") == len(fetched)
    assert len([1 for method, *_ in hub.requests if method == "GET"]) == len(fetched)  # nothing fetched twice


def test_a_connection_cut_mid_file_is_resumed_from_where_it_stopped(hub: Hub, tmp_path: Path) -> None:
    # Larger than huggingface_hub's 10 MB read: the first piece is on disk when the connection drops.
    hub.repos[CHECKPOINT]["gpt.pth"] = os.urandom(24 << 20)
    target = f"{CHECKPOINT}/gpt.pth"
    hub.cut_once.add(target)
    root = tmp_path / "models"
    pulled = models(hub, "pull", "indextts-2", "--dir", str(root))
    assert pulled.returncode == 0, pulled.stderr
    first, resumed = hub.gets(target)
    assert first is None
    assert resumed is not None
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= 12 << 20  # from where it stopped
    assert (root / "indextts-2" / "gpt.pth").read_bytes() == hub.repos[CHECKPOINT]["gpt.pth"]


def test_a_stopped_pull_keeps_its_files_and_the_next_fetches_only_the_rest(hub: Hub, tmp_path: Path) -> None:
    failing = "nvidia/bigvgan_v2_22khz_80band_256x/bigvgan_generator.pt"
    hub.failing.add(failing)
    root = tmp_path / "models"
    stopped = models(hub, "pull", "indextts-2", "--dir", str(root))
    assert stopped.returncode == 1
    assert failing in stopped.stderr
    assert "pull again" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    folder = root / "indextts-2"
    assert not (folder / ".complete").exists()
    listed = models(hub, "list", "--dir", str(root))
    assert listed.returncode == 1
    assert f"1 missing: {failing}" in listed.stdout
    assert missing_files(INDEXTTS_2, folder) == [failing]

    hub.failing.clear()
    hub.requests.clear()
    finished = models(hub, "pull", "indextts-2", "--dir", str(root))
    assert finished.returncode == 0, finished.stderr
    assert {target for method, target, _ in hub.requests if method == "GET"} == {failing}
    assert (folder / ".complete").is_file()


def test_a_damaged_file_is_found_and_fetched_again(hub: Hub, tmp_path: Path) -> None:
    root = tmp_path / "models"
    assert models(hub, "pull", "indextts-2", "--dir", str(root)).returncode == 0
    damaged = root / "indextts-2" / "s2mel.pth"
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte changed
    damaged.write_bytes(bytes(data))

    listed = models(hub, "list", "--dir", str(root))
    assert listed.returncode == 1
    assert f"1 damaged: {CHECKPOINT}/s2mel.pth" in listed.stdout
    assert models(hub, "list", "--quick", "--dir", str(root)).returncode == 0  # sizes only: it looks whole

    hub.requests.clear()
    repaired = models(hub, "pull", "indextts-2", "--dir", str(root))
    assert repaired.returncode == 0, repaired.stderr
    assert "s2mel.pth: fetching again (damaged)" in repaired.stderr
    assert {target for method, target, _ in hub.requests if method == "GET"} == {f"{CHECKPOINT}/s2mel.pth"}
    assert damaged.read_bytes() == hub.repos[CHECKPOINT]["s2mel.pth"]
    assert models(hub, "list", "--dir", str(root)).returncode == 0


def test_a_missing_repository_a_token_and_an_unknown_model_are_said_plainly(hub: Hub, tmp_path: Path) -> None:
    del hub.repos["funasr/campplus"]
    missing = models(hub, "pull", "indextts-2", "--dir", str(tmp_path / "a"))
    assert missing.returncode == 1
    assert "the repository funasr/campplus was not found" in missing.stderr
    assert "Traceback" not in missing.stderr

    hub.repos.update(contents())
    hub.token = TOKEN
    refused = models(hub, "pull", "indextts-2", "--dir", str(tmp_path / "b"))
    assert refused.returncode == 1
    assert "HF_TOKEN" in refused.stderr
    assert TOKEN not in refused.stderr
    allowed = models(hub, "pull", "indextts-2", "--dir", str(tmp_path / "b"), token=TOKEN)
    assert allowed.returncode == 0, allowed.stderr
    assert TOKEN not in allowed.stderr

    unknown = models(hub, "pull", "indextts-9", "--dir", str(tmp_path / "c"))
    assert unknown.returncode == 1
    assert "no model 'indextts-9' can be pulled; the models are: indextts-2" in unknown.stderr


def test_the_worker_names_what_a_pulled_checkpoint_lacks_before_it_loads_anything(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference_pod.engines.indextts2 import IndexTTS2Engine, checkpoint_gaps
    from tts_api.errors import ErrorCode, TTSError

    root = tmp_path / "models"
    assert models(hub, "pull", "indextts-2", "--dir", str(root)).returncode == 0
    folder = root / "indextts-2"
    hf_home = folder / "hf_cache"
    assert checkpoint_gaps(folder, folder / "config.yaml", hf_home) == []
    (folder / "gpt.pth").unlink()
    campplus = locate(INDEXTTS_2, folder, INDEXTTS_2.auxiliaries[2], "campplus_cn_common.bin")
    assert campplus is not None
    campplus.unlink()
    gaps = checkpoint_gaps(folder, folder / "config.yaml", hf_home)
    assert gaps[0] == "gpt.pth"
    assert gaps[1].startswith("funasr/campplus/campplus_cn_common.bin")
    for name in ("HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the engine sets them: restored after
        had = os.environ.get(name)
        monkeypatch.setenv(name, had or "")  # remembered as it was, absent included
        if had is None:
            monkeypatch.delenv(name)
    engine = IndexTTS2Engine(folder, hf_home=hf_home, device="cpu")
    with pytest.raises(TTSError) as refused:
        engine.load()
    assert refused.value.code is ErrorCode.MODEL_NOT_READY
    assert "gpt.pth" in refused.value.message
    assert "models pull indextts-2" in refused.value.message


@pytest.mark.slow
def test_indextts25_pulled_through_the_hub_loads_and_speaks_from_where_it_was_put(
    checkpoint25: Path, tmp_path: Path
) -> None:
    """The catalog's IndexTTS-2.5 files are those its code reads: a random-weight checkpoint, served
    file by file as the catalog names them (the checkpoint's repository, w2v-bert, CAMPPlus, BigVGAN),
    pulled, and loaded offline from the folder the pull made: nothing missing, nothing fetched."""
    from inference_pod.engines.base import SynthesisRequest
    from inference_pod.engines.indextts25 import IndexTTS25Engine, checkpoint_gaps
    from model_store.catalog import INDEXTTS_2_5
    from tests.inference_pod.conftest import write_voice

    repos: dict[str, dict[str, bytes]] = {}
    for group in (INDEXTTS_2_5.checkpoint, *INDEXTTS_2_5.auxiliaries):
        for name in group.files:
            source = locate(INDEXTTS_2_5, checkpoint25, group, name)
            assert source is not None, f"the random-weight checkpoint has no {group.repo}/{name}"
            repos.setdefault(group.repo, {})[name] = source.read_bytes()
    root = tmp_path / "models"
    with serving(Hub(repos)) as hub:
        pulled = models(hub, "pull", "indextts-2.5", "--dir", str(root))
        assert pulled.returncode == 0, pulled.stderr
        assert "indextts-2.5: complete" in pulled.stderr
        listed = models(hub, "list", "--dir", str(root))
    lines = listed.stdout.splitlines()
    assert any(line.startswith("indextts-2.5\tcomplete\t") for line in lines), listed.stdout
    folder = root / "indextts-2.5"
    assert (folder / "hf_cache" / "w2v-bert-2.0" / "model.safetensors").is_file()
    assert (folder / "hf_cache" / "campplus_cn_common.bin").is_file()
    assert (folder / "hf_cache" / "bigvgan" / "bigvgan_generator.pt").is_file()
    assert checkpoint_gaps(folder, folder / "config.yaml") == []

    engine = IndexTTS25Engine(folder, device="cpu", max_mel_tokens=12, num_beams=1, text_normalization=False)
    engine.load()
    voice = write_voice(tmp_path / "voice.wav")
    outcome = engine.synthesize(
        SynthesisRequest(text="你好。", reference_audio=voice), lambda done, total: None
    )
    assert outcome.duration > 0

    (folder / "hf_cache" / "campplus_cn_common.bin").unlink()
    assert checkpoint_gaps(folder, folder / "config.yaml") == ["hf_cache/campplus_cn_common.bin"]
