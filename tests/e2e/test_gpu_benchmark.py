"""benchmarks/gpu.py's whisper-large-v3 stand-in loads through lidframe's own ``whisper:/dir`` path.

A small model with large-v3's vocabulary and mel bins is built the way the benchmark builds the full
one, so the tokenizer made from whisper-base's (``<|yue|>`` inserted, later specials moved up one)
is checked without 1.5 B random parameters.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import lidframe
from lidframe.models import load_model
from lidframe.models.whisper_weights import resolve_whisper_source
from tests.fixtures.paths import ROOT


def _benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_large_v3_stand_in_has_large_v3_tokens_and_answers(tmp_path):
    from tokenizers import Tokenizer

    gpu = _benchmark()
    small = dict(gpu.LARGE_V3, d_model=64, encoder_layers=2, decoder_layers=2,
                 encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                 decoder_ffn_dim=128)  # fmt: skip
    base = Path(resolve_whisper_source("packaged:whisper-base"))
    folder = gpu.large_v3_dir(tmp_path / "v3", base, "cpu", small)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # openai/whisper-large-v3's ids
    assert tok.token_to_id("<|startoftranscript|>") == 50258
    assert tok.token_to_id("<|su|>") == 50357
    assert tok.token_to_id("<|yue|>") == 50358
    assert tok.token_to_id("<|transcribe|>") == 50360
    assert tok.token_to_id("<|notimestamps|>") == 50364
    model = load_model(lidframe.parse_model(f"whisper:{folder}", device="cpu"))
    assert len(model.labels) == 100 and "yue" in model.labels
    features = model.prepare(np.random.default_rng(0).standard_normal(32_000).astype(np.float32))
    assert features.shape[0] == 128  # large-v3's mel bins
    p = model.predict_prepared([features], context=20.0)
    assert p.shape == (1, 100) and abs(float(p.sum()) - 1) < 1e-4
