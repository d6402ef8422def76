"""A small random-weight IndexTTS2 checkpoint, built with the ``indextts`` package's own classes.

The real loading and inference code (``indextts.IndexTTS2``) runs on it offline, on CPU, in seconds:
the shapes the code fixes are kept (GPT width 1280, semantic width 1024, style 192, the emotion
matrix split), everything else is shrunk. The result is a checkpoint directory as production mounts
one, plus a Hugging Face hub cache (``HF_HOME``) holding w2v-bert-2.0, the MaskGCT semantic codec and
CAMPPlus, which the package loads by hub id.

Build it with ``build_checkpoint(root)``; ``HF_HUB_OFFLINE=1`` and ``HF_HOME`` must be set before
``indextts`` (or ``huggingface_hub``) is first imported, so call :func:`offline_environment` first.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REVISION = "0" * 40
TEXT_VOCAB = 256
EMO_NUM = [3, 17, 2, 8, 4, 5, 10, 24]
# Characters the test texts use; the tiny BPE model knows these and little else.
CORPUS_CHARS = "你好这是一个测试今天天气真好我们去公园散步吧语音合成模型的声音情感开心高兴难过生气平静说话"


@dataclass(frozen=True)
class Checkpoint:
    model_dir: Path
    hf_home: Path


def offline_environment(hf_home: Path) -> dict[str, str]:
    """The variables the engine needs to load offline; set them before importing indextts."""
    return {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "TRANSFORMERS_OFFLINE": "1"}


def config(model_dir: Path) -> dict[str, Any]:
    small_conditioning = {
        "output_size": 64,
        "linear_units": 64,
        "attention_heads": 2,
        "num_blocks": 1,
        "input_layer": "conv2d2",
        "perceiver_mult": 2,
    }
    return {
        "dataset": {
            "bpe_model": "bpe.model",
            "sample_rate": 24000,
            "squeeze": False,
            "mel": {
                "sample_rate": 24000,
                "n_fft": 1024,
                "hop_length": 256,
                "win_length": 1024,
                "n_mels": 100,
                "mel_fmin": 0,
                "normalize": False,
            },
        },
        "gpt": {
            "model_dim": 1280,
            "max_mel_tokens": 1815,
            "max_text_tokens": 600,
            "heads": 4,
            "use_mel_codes_as_input": True,
            "mel_length_compression": 1024,
            "layers": 1,
            "number_text_tokens": TEXT_VOCAB,
            "number_mel_codes": 8194,
            "start_mel_token": 8192,
            "stop_mel_token": 8193,
            "start_text_token": 0,
            "stop_text_token": 1,
            "train_solo_embeddings": False,
            "condition_type": "conformer_perceiver",
            "condition_module": small_conditioning,
            "emo_condition_module": small_conditioning,
        },
        "semantic_codec": {
            "codebook_size": 8192,
            "hidden_size": 1024,
            "codebook_dim": 8,
            "vocos_dim": 64,
            "vocos_intermediate_dim": 64,
            "vocos_num_layers": 1,
        },
        "s2mel": {
            "preprocess_params": {
                "sr": 22050,
                "spect_params": {
                    "n_fft": 1024,
                    "win_length": 1024,
                    "hop_length": 256,
                    "n_mels": 80,
                    "fmin": 0,
                    "fmax": "None",
                },
            },
            "dit_type": "DiT",
            "reg_loss_type": "l1",
            "style_encoder": {"dim": 192},
            "length_regulator": {
                "channels": 64,
                "is_discrete": False,
                "in_channels": 1024,
                "content_codebook_size": 2048,
                "sampling_ratios": [1, 1, 1, 1],
                "vector_quantize": False,
                "n_codebooks": 1,
                "quantizer_dropout": 0.0,
                "f0_condition": False,
                "n_f0_bins": 512,
            },
            "DiT": {
                "hidden_dim": 64,
                "num_heads": 2,
                "depth": 1,
                "class_dropout_prob": 0.1,
                "block_size": 8192,
                "in_channels": 80,
                "style_condition": True,
                "final_layer_type": "wavenet",
                "target": "mel",
                "content_dim": 64,
                "content_codebook_size": 1024,
                "content_type": "discrete",
                "f0_condition": False,
                "n_f0_bins": 512,
                "content_codebooks": 1,
                "is_causal": False,
                "long_skip_connection": True,
                "zero_prompt_speech_token": False,
                "time_as_token": False,
                "style_as_token": False,
                "uvit_skip_connection": True,
                "add_resblock_in_transformer": False,
            },
            "wavenet": {
                "hidden_dim": 64,
                "num_layers": 1,
                "kernel_size": 5,
                "dilation_rate": 1,
                "p_dropout": 0.2,
                "style_condition": True,
            },
        },
        "gpt_checkpoint": "gpt.pth",
        "w2v_stat": "wav2vec2bert_stats.pt",
        "s2mel_checkpoint": "s2mel.pth",
        "emo_matrix": "feat2.pt",
        "spk_matrix": "feat1.pt",
        "emo_num": EMO_NUM,
        "qwen_emo_path": "qwen0.6bemo4-merge/",
        # A local directory: BigVGAN is then read from disk, not the hub.
        "vocoder": {"type": "bigvgan", "name": str(model_dir / "bigvgan")},
        "version": 2.0,
    }


def _bpe(model_dir: Path) -> None:
    import sentencepiece as spm

    chars = CORPUS_CHARS + "abcdefghijklmnopqrstuvwxyz,.!?"
    lines = []
    for shift in range(200):
        rotated = chars[shift % len(chars) :] + chars[: shift % len(chars)]
        lines.append(" ".join(rotated[i : i + 3] for i in range(0, len(rotated), 3)))
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=TEXT_VOCAB,
        model_type="bpe",
        character_coverage=1.0,
        minloglevel=2,
    )
    (model_dir / "bpe.model").write_bytes(model.getvalue())


def _qwen(target: Path) -> None:
    """A tiny Qwen3 that ends at once: end token 0, final norm zero, so every logit is 0 -> token 0."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    vocab = {"<|endoftext|>": 0, "<unk>": 1}
    for char in dict.fromkeys(CORPUS_CHARS + '文本分类{}:"., 0123456789'):
        vocab.setdefault(char, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))  # noqa: S106
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    special = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)  # type: ignore[no-untyped-call]
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    fast.save_pretrained(target)
    qwen_config = Qwen3Config(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        eos_token_id=0,
        bos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = Qwen3ForCausalLM(qwen_config)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.generation_config.eos_token_id = 0
    model.generation_config.pad_token_id = 0
    model.save_pretrained(target)


def _hub_snapshot(hf_home: Path, repo: str) -> Path:
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def _hub_models(hf_home: Path, cfg: dict[str, Any]) -> None:
    import safetensors.torch
    import torch
    from indextts.s2mel.modules.campplus.DTDNN import CAMPPlus
    from indextts.utils.maskgct_utils import build_semantic_codec
    from omegaconf import OmegaConf
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    w2v = _hub_snapshot(hf_home, "facebook/w2v-bert-2.0")
    # The code reads hidden_states[17]: 17 layers of the real width; the feed-forward is shrunk.
    w2v_config = Wav2Vec2BertConfig(
        hidden_size=1024,
        num_hidden_layers=17,
        num_attention_heads=16,
        intermediate_size=64,
        conv_depthwise_kernel_size=3,
    )
    Wav2Vec2BertModel(w2v_config).save_pretrained(w2v)
    SeamlessM4TFeatureExtractor().save_pretrained(w2v)  # type: ignore[no-untyped-call]

    codec_dir = _hub_snapshot(hf_home, "amphion/MaskGCT") / "semantic_codec"
    codec_dir.mkdir(parents=True, exist_ok=True)
    codec = build_semantic_codec(OmegaConf.create(cfg["semantic_codec"]))
    safetensors.torch.save_model(codec, str(codec_dir / "model.safetensors"))

    campplus = _hub_snapshot(hf_home, "funasr/campplus")
    torch.save(CAMPPlus(feat_dim=80, embedding_size=192).state_dict(), campplus / "campplus_cn_common.bin")


def _bigvgan(target: Path) -> None:
    import torch
    from indextts.s2mel.modules.bigvgan import bigvgan

    target.mkdir(parents=True, exist_ok=True)
    template = Path(bigvgan.__file__).with_name("config.json")
    hparams = json.loads(template.read_text())
    hparams.update(
        upsample_initial_channel=64,
        upsample_rates=[4, 4, 2, 2, 2, 2],
        upsample_kernel_sizes=[8, 8, 4, 4, 4, 4],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3, 5]],
    )
    (target / "config.json").write_text(json.dumps(hparams))
    model = bigvgan.BigVGAN(bigvgan.load_hparams_from_json(str(target / "config.json")))
    torch.save({"generator": model.state_dict()}, target / "bigvgan_generator.pt")


def build_checkpoint(root: Path) -> Checkpoint:
    """Write the checkpoint under ``root`` (``root/model``, ``root/hf_home``) and return where."""
    import torch
    from indextts.gpt.model_v2 import UnifiedVoice
    from indextts.s2mel.modules.commons import MyModel
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model_dir, hf_home = root / "model", root / "hf_home"
    model_dir.mkdir(parents=True, exist_ok=True)
    cfg = config(model_dir)
    (model_dir / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    omega = OmegaConf.create(cfg)

    _bpe(model_dir)
    gpt = UnifiedVoice(**omega.gpt)
    torch.save(gpt.state_dict(), model_dir / "gpt.pth")
    s2mel = MyModel(omega.s2mel, use_gpt_latent=True)
    torch.save(
        {"net": {key: s2mel.models[key].state_dict() for key in s2mel.models}}, model_dir / "s2mel.pth"
    )
    torch.save({"mean": torch.zeros(1024), "var": torch.ones(1024)}, model_dir / "wav2vec2bert_stats.pt")
    torch.save(torch.randn(sum(EMO_NUM), 192), model_dir / "feat1.pt")
    torch.save(torch.randn(sum(EMO_NUM), 1280) * 0.02, model_dir / "feat2.pt")
    _bigvgan(model_dir / "bigvgan")
    _qwen(model_dir / "qwen0.6bemo4-merge")
    _hub_models(hf_home, cfg)
    return Checkpoint(model_dir=model_dir, hf_home=hf_home)


if (
    __name__ == "__main__"
):  # pragma: no cover - a manual aid: python -m tests.inference_pod.checkpoint_builder DIR
    import sys
    import time

    target = Path(sys.argv[1])
    os.environ.update(offline_environment(target / "hf_home"))
    began = time.perf_counter()
    built = build_checkpoint(target)
    print(f"built {built} in {time.perf_counter() - began:.1f} s")
