"""Read a CTranslate2 (faster-whisper) Whisper directory into transformers' Whisper layout.

CTranslate2's ``model.bin`` is a documented binary (``ctranslate2/specs/model_spec.py``,
``_serialize``): a version, the spec name, a revision, then named variables (name, rank, shape,
dtype id, byte count, raw bytes) and aliases. Whisper conversions fuse attention projections
(self-attention QKV into ``linear_0``, cross-attention KV into ``linear_1``); this module splits them
back into the names of ``transformers.WhisperForConditionalGeneration``. Keys carry no bias in
Whisper, and a bias on keys does not change attention weights anyway, so the fused key bias
(zeros in conversions from transformers) is dropped.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from lidframe.errors import ModelError

__all__ = ["is_ctranslate2_whisper_dir", "read_model_bin", "to_transformers"]

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SUPPORTED_BINARY_VERSIONS = (5, 6)


def is_ctranslate2_whisper_dir(path: Path) -> bool:
    """True when ``path`` looks like a faster-whisper model directory."""
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin``; returns the spec name and every variable (aliases resolved)."""
    data = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal pos
        length = take("H")
        text = bytes(data[pos : pos + length - 1]).decode("utf-8")
        pos += length
        return text

    try:
        version = take("I")
        if version not in _SUPPORTED_BINARY_VERSIONS:
            raise ModelError(
                f"{path}: CTranslate2 binary version {version} is not supported "
                f"(supported: {_SUPPORTED_BINARY_VERSIONS})"
            )
        spec = string()
        take("I")  # revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = string()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype_id = take("B")
            nbytes = take("I")
            raw = data[pos : pos + nbytes]
            pos += nbytes
            if dtype_id == _DTYPES.index("bfloat16"):
                u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                array = u16.view(np.float32)
            else:
                array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype_id]).newbyteorder("<"))
            variables[name] = array.reshape(shape)
        for _ in range(take("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a readable CTranslate2 model.bin ({exc})") from exc
    return spec, variables


def _split(weight: np.ndarray, parts: int) -> list[np.ndarray]:
    return list(np.split(weight, parts, axis=0))


def to_transformers(model_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Convert a faster-whisper directory to ``(WhisperConfig kwargs, state dict)`` for transformers."""
    spec, v = read_model_bin(model_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ModelError(f"{model_dir}: model.bin holds a {spec}, not a Whisper model")
    ct2_config = json.loads((model_dir / "config.json").read_text())

    def layers(prefix: str) -> int:
        count = 0
        while f"{prefix}/layer_{count}/ffn/linear_0/weight" in v:
            count += 1
        return count

    n_enc, n_dec = layers("encoder"), layers("decoder")
    vocab, d_model = v["decoder/embeddings/weight"].shape
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if f"{src}/bias" in v:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/gamma"]
        sd[f"{dst}.bias"] = v[f"{src}/beta"]

    def self_attention(dst: str, src: str) -> None:
        q, k, vv = _split(v[f"{src}/linear_0/weight"], 3)
        qb, _kb, vb = _split(v[f"{src}/linear_0/bias"], 3)
        sd.update(
            {f"{dst}.q_proj.weight": q, f"{dst}.k_proj.weight": k, f"{dst}.v_proj.weight": vv}
        )
        sd.update({f"{dst}.q_proj.bias": qb, f"{dst}.v_proj.bias": vb})
        linear(f"{dst}.out_proj", f"{src}/linear_1")

    def ffn(dst: str, src: str) -> None:
        linear(f"{dst}.fc1", f"{src}/linear_0")
        linear(f"{dst}.fc2", f"{src}/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/layer_norm")

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    sd[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    for i in range(n_enc):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        self_attention(f"{dst}.self_attn", f"{src}/self_attention")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        ffn(dst, f"{src}/ffn")
    norm(f"{enc}.layer_norm", "encoder/layer_norm")

    sd[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for i in range(n_dec):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        self_attention(f"{dst}.self_attn", f"{src}/self_attention")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        sd[f"{dst}.encoder_attn.q_proj.weight"] = v[f"{src}/attention/linear_0/weight"]
        sd[f"{dst}.encoder_attn.q_proj.bias"] = v[f"{src}/attention/linear_0/bias"]
        k, vv = _split(v[f"{src}/attention/linear_1/weight"], 2)
        _kb, vb = _split(v[f"{src}/attention/linear_1/bias"], 2)
        sd[f"{dst}.encoder_attn.k_proj.weight"] = k
        sd[f"{dst}.encoder_attn.v_proj.weight"] = vv
        sd[f"{dst}.encoder_attn.v_proj.bias"] = vb
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        ffn(dst, f"{src}/ffn")
    norm(f"{dec}.layer_norm", "decoder/layer_norm")

    config = {
        "vocab_size": int(vocab),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": int(d_model),
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        "lang_ids": list(ct2_config.get("lang_ids", [])),
    }
    return config, sd
