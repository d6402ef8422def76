"""The models that can be pulled, and exactly which files of which hub repositories each engine reads.

A model lives in a folder of its own under a models root (``<root>/<name>/``): the checkpoint's files
as its repository holds them, and ``hf_cache/``, a hub cache holding the auxiliary models the engine
loads by hub id (read offline, ``HF_HUB_OFFLINE=1``). That folder is what ``TTS_WORKER_CHECKPOINT_DIR``
names; the engine finds ``hf_cache/`` inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HubFiles:
    """Some files of one hub repository."""

    repo: str
    files: tuple[str, ...]
    revision: str = "main"
    # Where an auxiliary model's files go, as plain files, relative to the model's folder (an engine
    # that reads them from a folder, not by hub id); None: into the model's hub cache.
    placed: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    checkpoint: HubFiles
    auxiliaries: tuple[HubFiles, ...]

    def folder(self, root: Path) -> Path:
        return root / self.name

    @staticmethod
    def hub_cache(folder: Path) -> Path:
        """The hub cache (``HF_HUB_CACHE``) of a model's folder."""
        return folder / "hf_cache" / "hub"


QWEN_EMOTION = "qwen0.6bemo4-merge"
# The vocoder IndexTTS2's config.yaml names by hub id (or by a folder holding these files).
BIGVGAN = HubFiles("nvidia/bigvgan_v2_22khz_80band_256x", ("config.json", "bigvgan_generator.pt"))

INDEXTTS_2 = ModelSpec(
    name="indextts-2",
    description="IndexTTS2 (IndexTeam/IndexTTS-2) and the models it loads: w2v-bert-2.0, MaskGCT's "
    "semantic codec, CAMPPlus, BigVGAN",
    checkpoint=HubFiles(
        "IndexTeam/IndexTTS-2",
        (
            "config.yaml",
            "bpe.model",
            "gpt.pth",
            "s2mel.pth",
            "wav2vec2bert_stats.pt",
            "feat1.pt",
            "feat2.pt",
            *(
                f"{QWEN_EMOTION}/{name}"
                for name in (
                    "Modelfile",
                    "added_tokens.json",
                    "chat_template.jinja",
                    "config.json",
                    "generation_config.json",
                    "merges.txt",
                    "model.safetensors",
                    "special_tokens_map.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "vocab.json",
                )
            ),
        ),
    ),
    auxiliaries=(
        HubFiles("facebook/w2v-bert-2.0", ("config.json", "preprocessor_config.json", "model.safetensors")),
        HubFiles("amphion/MaskGCT", ("semantic_codec/model.safetensors",)),
        HubFiles("funasr/campplus", ("campplus_cn_common.bin",)),
        BIGVGAN,
    ),
)

# IndexTTS-2.5 reads its auxiliary models from plain folders under <model>/hf_cache/ (it fetches only
# what is not there); it has no text-emotion model, so the repository's qwen0.6bemo4-merge/ is left out.
INDEXTTS_2_5 = ModelSpec(
    name="indextts-2.5",
    description="IndexTTS-2.5 (IndexTeam/IndexTTS-2.5) and the models it loads: w2v-bert-2.0, CAMPPlus, "
    "BigVGAN",
    checkpoint=HubFiles(
        "IndexTeam/IndexTTS-2.5",
        (
            "config.yaml",
            "gpt.pth",
            "s2mel.pth",
            "codec.pth",
            "wav2vec2bert_stats.pt",
            "feat1.pt",
            "feat2.pt",
            "multilingual_zh_ja_yue_char_del.tiktoken",
        ),
    ),
    auxiliaries=(
        HubFiles(
            "facebook/w2v-bert-2.0",
            ("config.json", "preprocessor_config.json", "model.safetensors"),
            placed="hf_cache/w2v-bert-2.0",
        ),
        HubFiles("funasr/campplus", ("campplus_cn_common.bin",), placed="hf_cache"),
        HubFiles(BIGVGAN.repo, BIGVGAN.files, placed="hf_cache/bigvgan"),
    ),
)

CATALOG: dict[str, ModelSpec] = {spec.name: spec for spec in (INDEXTTS_2, INDEXTTS_2_5)}


class UnknownModelError(ValueError):
    """A model name the catalog does not hold."""


def model_spec(name: str) -> ModelSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownModelError(
            f"no model {name!r} can be pulled; the models are: {', '.join(sorted(CATALOG))}"
        ) from None
