"""A small random-weight IndexTTS-2.5 checkpoint, built with the ``indextts25`` package's own classes.

The real loading and inference code (``indextts25.api.IndexTTS25``) runs on it offline, on CPU, in
seconds. The shapes the code fixes are kept (the semantic width 1024 of w2v-bert and the codec, the
speaker style 192, 80 mel bands, the hop of 256, w2v-bert's 17 layers, the emotion matrix split);
everything else is shrunk. 2.5 reads its auxiliary models from ``<model_dir>/hf_cache/`` as plain
folders (``w2v-bert-2.0/``, ``campplus_cn_common.bin``, ``bigvgan/``), not from a hub cache: with all
of them there, nothing is ever fetched.

The text tokenizer is a tiktoken vocabulary of the 256 single bytes (ranks 0..255) plus the package's
special tokens; the GPT's text embedding is sized to fit it.

Build it with ``build_checkpoint25(root)``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from tests.inference_pod.checkpoint_builder import EMO_NUM

TIKTOKEN_NAME = "multilingual_zh_ja_yue_char_del"
MODEL_DIM = 64
STYLE_DIM = 192
SEMANTIC_DIM = 1024


def write_vocabulary(model_dir: Path) -> int:
    """The .tiktoken file (each byte its own token) and the tokenizer's size with its specials."""
    lines = [f"{base64.b64encode(bytes([i])).decode()} {i}" for i in range(256)]
    (model_dir / f"{TIKTOKEN_NAME}.tiktoken").write_text("\n".join(lines) + "\n")
    from indextts25.utils.tokenizer import get_encoding

    return int(get_encoding(TIKTOKEN_NAME, model_dir=str(model_dir)).n_vocab)


def config(text_tokens: int) -> dict[str, Any]:
    small_conditioning = {
        "output_size": 64,
        "linear_units": 64,
        "attention_heads": 2,
        "num_blocks": 1,
        "input_layer": "conv2d2",
        "perceiver_mult": 2,
    }
    return {
        "gpt": {
            "model_dim": MODEL_DIM,
            "max_mel_tokens": 200,
            "max_text_tokens": 600,
            "heads": 2,
            "layers": 1,
            "number_text_tokens": text_tokens,
            "number_mel_codes": 8194,
            "start_mel_token": 8192,
            "stop_mel_token": 8193,
            "start_text_token": 0,
            "stop_text_token": 1,
            "emo_condition_module": small_conditioning,
        },
        "semantic_codec": {
            "codebook_size": 8192,
            "hidden_size": SEMANTIC_DIM,
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
            "style_encoder": {"dim": STYLE_DIM},
            "length_regulator": {
                "channels": 64,
                "in_channels": SEMANTIC_DIM,
                "content_codebook_size": 2048,
                "sampling_ratios": [1, 1, 1, 1],
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
        "s2mel_checkpoint": "s2mel.pth",
        "w2v_stat": "wav2vec2bert_stats.pt",
        "emo_matrix": "feat2.pt",
        "spk_matrix": "feat1.pt",
        "emo_num": EMO_NUM,
        "version": 2.5,
    }


def _w2v_bert(target: Path) -> None:
    """w2v-bert-2.0's files: its config, its feature extractor's, and random weights for every key.

    The model is laid out on the meta device and its weights drawn directly: its own random
    initialisation of ~130 M parameters takes seconds that the package spends again when it loads.
    """
    import safetensors.torch
    import torch
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    # The code reads hidden_states[17]: 17 layers of the real width; the feed-forward is shrunk.
    w2v_config = Wav2Vec2BertConfig(
        hidden_size=SEMANTIC_DIM,
        num_hidden_layers=17,
        num_attention_heads=16,
        intermediate_size=64,
        conv_depthwise_kernel_size=3,
    )
    with torch.device("meta"):
        layout = Wav2Vec2BertModel(w2v_config)
    # bfloat16 on disk (half the bytes to write); loading copies it into the float32 model.
    weights = {}
    for name, tensor in layout.state_dict().items():
        if tensor.ndim == 1:
            fill = torch.ones if name.endswith("weight") else torch.zeros
            weights[name] = fill(tensor.shape, dtype=torch.bfloat16)
        else:
            weights[name] = torch.randn(tensor.shape, dtype=torch.bfloat16).mul_(0.02)
    target.mkdir(parents=True, exist_ok=True)
    w2v_config.save_pretrained(target)
    safetensors.torch.save_file(weights, str(target / "model.safetensors"))
    SeamlessM4TFeatureExtractor().save_pretrained(target)  # type: ignore[no-untyped-call]


def _bigvgan(target: Path) -> None:
    import torch
    from indextts25.s2mel.modules.bigvgan.bigvgan import BigVGAN, load_hparams_from_json

    target.mkdir(parents=True, exist_ok=True)
    hparams = {
        "resblock": "1",
        "num_mels": 80,
        "upsample_initial_channel": 64,
        "upsample_rates": [4, 4, 2, 2, 2, 2],  # 256 samples per mel frame, as the real one
        "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "activation": "snakebeta",
        "snake_logscale": True,
        "use_bias_at_final": False,
        "use_tanh_at_final": False,
        "sampling_rate": 22050,
        "hop_size": 256,
    }
    (target / "config.json").write_text(json.dumps(hparams))
    model = BigVGAN(load_hparams_from_json(str(target / "config.json")))
    torch.save({"generator": model.state_dict()}, target / "bigvgan_generator.pt")


def build_checkpoint25(root: Path) -> Path:
    """Write the checkpoint into ``root/model`` and return that folder."""
    import torch
    from indextts25.codec.models import EnhancedCodec
    from indextts25.gpt.model_v2 import UnifiedVoice
    from indextts25.s2mel.modules.campplus.DTDNN import CAMPPlus
    from indextts25.s2mel.modules.commons import MyModel
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model_dir = root / "model"
    hf_cache = model_dir / "hf_cache"
    hf_cache.mkdir(parents=True, exist_ok=True)
    cfg = config(write_vocabulary(model_dir))
    (model_dir / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    omega = OmegaConf.create(cfg)

    torch.save(UnifiedVoice(**omega.gpt).state_dict(), model_dir / "gpt.pth")
    s2mel = MyModel(omega.s2mel)
    torch.save(
        {"net": {key: s2mel.models[key].state_dict() for key in s2mel.models}}, model_dir / "s2mel.pth"
    )
    torch.save({"model": EnhancedCodec(**omega.semantic_codec).state_dict()}, model_dir / "codec.pth")
    torch.save(
        {"mean": torch.zeros(SEMANTIC_DIM), "var": torch.ones(SEMANTIC_DIM)},
        model_dir / "wav2vec2bert_stats.pt",
    )
    torch.save(torch.randn(sum(EMO_NUM), STYLE_DIM), model_dir / "feat1.pt")
    torch.save(torch.randn(sum(EMO_NUM), MODEL_DIM) * 0.02, model_dir / "feat2.pt")

    _w2v_bert(hf_cache / "w2v-bert-2.0")
    torch.save(
        CAMPPlus(feat_dim=80, embedding_size=STYLE_DIM).state_dict(), hf_cache / "campplus_cn_common.bin"
    )
    _bigvgan(hf_cache / "bigvgan")
    return model_dir


if (
    __name__ == "__main__"
):  # pragma: no cover - a manual aid: python -m tests.inference_pod.checkpoint_builder25 DIR
    import sys
    import time

    began = time.perf_counter()
    built = build_checkpoint25(Path(sys.argv[1]))
    print(f"built {built} in {time.perf_counter() - began:.1f} s")
