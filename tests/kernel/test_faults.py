"""Forward passes sized by a seconds budget, CUDA out of memory handled by smaller passes, and
Whisper's batched log-mel (the GPU input path, checked on the CPU where it can be).

The kernel runs for real (decoder processes, real files); the model side is small families
registered here that record the batches they see, or inject ``torch.cuda.OutOfMemoryError`` the way
a GPU raises it, and real whisper-base weights. The ``gpu`` tests run on CUDA only.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from lidframe.kernel import KernelConfig, identify_partition
from lidframe.models import Batch, LidModel, load_model, parse_model, register_family
from lidframe.models.whisper import WhisperLid
from lidframe.models.whisper_mel import LogMel, log_mel_batch, mel_frames
from lidframe.speech import SpeechConfig
from lidframe.testing import TEXTS, sine, synthesize, write_wav

SR = 16_000


class ShapeLid(LidModel):
    """Answers from the mean of each clip's valid samples; records every batch's shape."""

    shapes: ClassVar[list[tuple[int, int]]] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def forward(self, batch: Batch) -> torch.Tensor:
        type(self).shapes.append((len(batch), int(batch.values.shape[-1])))
        mask = batch.mask.to(batch.values.dtype)
        mean = ((batch.values.abs() * mask).sum(-1) / mask.sum(-1)).clamp(0, 1)
        return torch.stack([mean, 1 - mean], dim=-1)


class SecondsLid(ShapeLid):
    """Pads every batch up to whole seconds: the budget must count padded, not clip, length."""

    shapes: ClassVar[list[tuple[int, int]]] = []

    def padded_length(self, longest: int, context: float | None = None) -> int:
        return -(-longest // SR) * SR


MOST = 2  # clips per pass above which OomLid "runs out of memory"
LONG = 3 * SR  # a pass longer than this runs out of memory even with one clip


class OomLid(ShapeLid):
    """Raises CUDA's out-of-memory error when a pass holds more than MOST clips or is longer than
    LONG samples (what a GPU with little free memory does), on the CPU."""

    shapes: ClassVar[list[tuple[int, int]]] = []
    refused: ClassVar[list[int]] = []  # clips of each pass that ran out of memory

    def forward(self, batch: Batch) -> torch.Tensor:
        if len(batch) > MOST or batch.values.shape[-1] > LONG:
            OomLid.refused.append(len(batch))
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 1.00 GiB free)"
            )
        return super().forward(batch)


class LongOomLid(ShapeLid):
    """Runs out of memory on a pass longer than LONG samples only: any number of short clips fit."""

    shapes: ClassVar[list[tuple[int, int]]] = []
    refused: ClassVar[list[int]] = []

    def forward(self, batch: Batch) -> torch.Tensor:
        if batch.values.shape[-1] > LONG:
            LongOomLid.refused.append(len(batch))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return super().forward(batch)


class BatchOnlyLid(LidModel):
    """A family with predict_batch only (no forward): runs out of memory above MOST clips."""

    calls: ClassVar[list[int]] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        BatchOnlyLid.calls.append(len(waveforms))
        if len(waveforms) > MOST:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return np.array([[min(len(w) / SR, 1.0), 1 - min(len(w) / SR, 1.0)] for w in waveforms])


for _name, _cls in (
    ("test-batch-only", BatchOnlyLid),
    ("test-shape", ShapeLid),
    ("test-seconds", SecondsLid),
    ("test-oom", OomLid),
    ("test-long-oom", LongOomLid),
):
    register_family(_name, _cls)


def _tones(folder: Path, seconds: list[float]) -> pd.DataFrame:
    paths = []
    for i, s in enumerate(seconds):
        path = folder / f"tone{i:02d}.wav"
        write_wav(path, sine(s, freq=200 + 20 * i))
        paths.append(path)
    return pd.DataFrame(
        {
            "id": [p.stem for p in paths],
            "audio": pd.array([str(p) for p in paths], dtype="string"),
            "offset": np.nan,
            "duration": np.nan,
        }
    )


def _config(model: str, batch_size: int, batch_seconds: float | None, **speech) -> KernelConfig:
    return KernelConfig(
        models=(parse_model(model),),
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        speech=SpeechConfig(**({"vad": False} | speech)),
        decode_threads=2,
    )


def test_a_seconds_budget_cuts_passes_by_padded_input(tmp_path):
    frame = _tones(tmp_path, [4, 0.5, 2, 1, 0.5, 3, 1, 2])
    ShapeLid.shapes.clear()
    # one least context for every clip (the default runs speech under 1 s in passes of its own)
    budgeted = identify_partition(frame, _config("test-shape:x", 8, 4.0, context=10.0))
    # sorted: 0.5 0.5 1 1 | 2 2 | 3 | 4 s; each pass <= 4 s of padded input (clips x longest),
    # and a clip longer than the budget still gets a pass of its own
    assert ShapeLid.shapes == [(4, SR), (2, 2 * SR), (1, 3 * SR), (1, 4 * SR)]
    ShapeLid.shapes.clear()
    capped = identify_partition(frame, _config("test-shape:x", 3, 4.0, context=10.0))
    assert ShapeLid.shapes == [(3, SR), (2, 2 * SR), (1, 2 * SR), (1, 3 * SR), (1, 4 * SR)]
    ShapeLid.shapes.clear()
    plain = identify_partition(frame, _config("test-shape:x", 8, None, context=10.0))
    assert ShapeLid.shapes == [(8, 4 * SR)]
    for out in (budgeted, capped):
        assert out["error"].isna().all()
        np.testing.assert_allclose(out["test_shape_x_prob"], plain["test_shape_x_prob"], rtol=1e-6)


def test_the_budget_counts_the_models_padded_length(tmp_path):
    # six 0.3 s clips are 1.8 s of audio, but this model pads each pass to whole seconds
    frame = _tones(tmp_path, [0.3] * 6)
    SecondsLid.shapes.clear()
    out = identify_partition(frame, _config("test-seconds:x", 8, 2.0))
    assert SecondsLid.shapes == [(2, SR)] * 3
    assert out["error"].isna().all()


def test_the_budget_must_be_positive():
    with pytest.raises(Exception, match="batch_seconds must be positive, got 0"):
        _config("test-shape:x", 8, 0.0)


def test_cuda_out_of_memory_halves_the_passes_and_answers_every_row(tmp_path):
    # 40 short clips: a first window of 32 (BUCKETS x batch_size) and a second of 8
    frame = _tones(tmp_path, [0.1 + 0.01 * i for i in range(40)])
    OomLid.shapes.clear()
    OomLid.refused.clear()
    out = identify_partition(frame, _config("test-oom:x", 8, 80.0))
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    assert out["test_oom_x_prob"].notna().all()
    # 8 clips ran out of memory, then 4; passes of 2 fit, and stayed 2 for the second window
    assert OomLid.refused == [8, 4]
    assert [n for n, _ in OomLid.shapes] == [2] * 20
    reference = identify_partition(frame, _config("test-shape:x", 8, None))
    np.testing.assert_allclose(out["test_oom_x_prob"], reference["test_shape_x_prob"], rtol=1e-6)


def test_shrunken_passes_grow_back_and_back_off_when_memory_stays_short(tmp_path):
    # six windows of 32 clips; passes of more than MOST = 2 clips never fit
    frame = _tones(tmp_path, [0.1 + 0.001 * i for i in range(192)])
    OomLid.shapes.clear()
    OomLid.refused.clear()
    out = identify_partition(frame, _config("test-oom:x", 8, None))
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    # window 1: 8 and 4 run out, 2 fits; after two windows that fit it tries 4 again (window 3),
    # which runs out, so the next try waits four windows: window 7 would be the next
    assert OomLid.refused == [8, 4, 4]
    assert {n for n, _ in OomLid.shapes} == {2}


def test_one_clip_too_long_for_the_device_does_not_shrink_the_rest_of_the_partition(tmp_path):
    # a 4 s clip (longer than LONG) in the first window, then three windows of short clips
    seconds = [0.5 + 0.001 * i for i in range(128)]
    seconds[5] = 4.0
    frame = _tones(tmp_path, seconds)
    LongOomLid.shapes.clear()
    LongOomLid.refused.clear()
    out = identify_partition(frame, _config("test-long-oom:x", 8, None))
    failed = out.set_index("id")["error"].dropna()
    assert list(failed.index) == ["tone05"]
    assert failed["tone05"].startswith("model_failed: test_long_oom_x: OutOfMemoryError")
    assert out.loc[out["id"] != "tone05", "test_long_oom_x_prob"].notna().all()
    # after the first window every pass is back to 8 clips
    later = LongOomLid.shapes[-12:]
    assert [n for n, _ in later] == [8] * 12
    assert LongOomLid.refused[-1] == 1  # the long clip, alone


def test_a_predict_batch_family_gets_the_pass_sizes_and_their_halving(tmp_path):
    frame = _tones(tmp_path, [0.2 + 0.02 * i for i in range(20)])  # 20 clips: one window
    BatchOnlyLid.calls.clear()
    out = identify_partition(frame, _config("test-batch-only:x", 8, None))
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    # passes of 8 (8, 8, 4) run out on the first, then of 4, then 2 answer all 20 clips
    assert BatchOnlyLid.calls == [8, 4] + [2] * 10
    expected = [min(s, 1.0) for s in 0.2 + 0.02 * np.arange(20)]
    np.testing.assert_allclose(
        out["test_batch_only_x_prob"].where(
            out["test_batch_only_x_lang"] == "en", 1 - out["test_batch_only_x_prob"]
        ),
        expected,
        rtol=1e-4,
    )


def test_a_clip_that_does_not_fit_alone_gets_its_own_row_error(tmp_path):
    frame = _tones(tmp_path, [0.5, 1.0, 4.0, 0.7, 1.5, 2.0])  # 4 s: longer than LONG
    OomLid.refused.clear()
    out = identify_partition(frame, _config("test-oom:x", 8, None))
    failed = out.set_index("id")["error"].dropna()
    assert list(failed.index) == ["tone02"]
    assert failed["tone02"].startswith("model_failed: test_oom_x: OutOfMemoryError: CUDA out of")
    others = out[out["id"] != "tone02"]
    assert others["test_oom_x_prob"].notna().all()
    assert out.loc[out["id"] == "tone02", "test_oom_x_prob"].isna().all()


@pytest.fixture(scope="module")
def log_mel() -> LogMel:
    return LogMel(80)


def test_batched_log_mel_equals_each_clips_own(log_mel):
    rng = np.random.default_rng(3)
    # odd lengths, a multiple of the hop, 30 s exactly and longer (cut at 30 s)
    lengths = [400, 1_601, 16_000, 48_123, 96_000, 480_000, 530_000]
    waves = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    alone = [log_mel(w) for w in waves]
    assert [a.shape[-1] for a in alone] == [mel_frames(n) for n in lengths]
    padded = torch.zeros(len(waves), max(lengths))
    for i, w in enumerate(waves):
        padded[i, : len(w)] = torch.from_numpy(w)
    samples = torch.tensor(lengths)
    for width in (3_000, 400):
        batch = log_mel_batch(padded, samples, log_mel.filters, log_mel.window, width).numpy()
        assert batch.shape == (len(waves), 80, width)
        for i, a in enumerate(alone):
            n = min(a.shape[-1], width)
            np.testing.assert_allclose(batch[i, :, :n], a[:, :n], rtol=1e-4, atol=1e-4)
            assert not batch[i, :, n:].any()


def _speech_clips(folder: Path) -> list[Path]:
    paths = []
    for lang, line in (("de", 0), ("es", 0), ("en", 1), ("fi", 0), ("sv", 0)):
        path = folder / f"{lang}.wav"
        synthesize(TEXTS[lang][line], lang, path)
        paths.append(path)
    return paths


def _frame(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [p.stem for p in paths], "audio": pd.array([str(p) for p in paths], "string")}
    )


@pytest.mark.slow
def test_whisper_answers_do_not_depend_on_the_budget(tmp_path):
    frame = _frame(_speech_clips(tmp_path))
    # context 20 s: each clip pads to at least 2,000 frames, so 45 s holds two clips a pass
    plain = identify_partition(frame, _config("whisper-base", 8, None, vad=True))
    small = identify_partition(frame, _config("whisper-base", 8, 45.0, vad=True))
    assert plain["error"].isna().all() and small["error"].isna().all()
    assert list(small["whisper_base_lang"]) == list(plain["whisper_base_lang"])
    np.testing.assert_allclose(
        small["whisper_base_prob"], plain["whisper_base_prob"], rtol=1e-4, atol=1e-6
    )
    model = load_model(parse_model("whisper-base", device="cpu"))
    features = [np.zeros((80, f), np.float32) for f in (500, 900, 2100, 2400)]
    passes = model.passes(features, 8, context=20.0, batch_seconds=45.0)
    assert [len(p) for p in passes] == [2, 1, 1]  # 2 x 20 s; 25 s; 25 s


@pytest.mark.slow
def test_whisper_log_mel_in_collate_gives_the_same_answers(tmp_path):
    """The GPU path (waveforms prepared, log-mel computed per batch in collate) run on the CPU."""
    from lidframe import decode_window

    waves = [decode_window(str(p)) for p in _speech_clips(tmp_path)]
    waves.append(np.concatenate([waves[0], waves[1], waves[2], waves[3]]))  # over 30 s: cut
    spec = parse_model("whisper-base", device="cpu")
    cpu = load_model(spec)
    batched = WhisperLid(spec)  # an instance of its own: the cached one keeps computing per clip
    batched.mel_on_device = True
    prepared = [batched.prepare(w) for w in waves]
    assert all(p.ndim == 1 for p in prepared)
    for context in (None, 20.0, 10.0):
        expected = cpu.predict_prepared([cpu.prepare(w) for w in waves], 3, context=context)
        got = batched.predict_prepared(prepared, 3, context=context)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# -- on a GPU --------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_gpu_answers_equal_cpu_answers(tmp_path):
    from lidframe import decode_window

    waves = [decode_window(str(p)) for p in _speech_clips(tmp_path)]
    cpu = load_model(parse_model("whisper-base", device="cpu"))
    gpu = load_model(parse_model("whisper-base", device="cuda"))
    assert gpu.mel_on_device
    for context in (None, 20.0):
        expected = cpu.predict_prepared([cpu.prepare(w) for w in waves], 2, context=context)
        got = gpu.predict_prepared([gpu.prepare(w) for w in waves], 2, context=context)
        # cuDNN convolutions may use TF32: close, and the same languages
        np.testing.assert_allclose(got, expected, atol=5e-3)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


@pytest.mark.gpu
@needs_cuda
def test_gpu_memory_returns_to_baseline_after_partitions_even_out_of_memory(tmp_path):
    config = _config("whisper-base", 64, None, context="full")
    frame = _tones(tmp_path, [1.0 + 0.25 * (i % 8) for i in range(64)])
    load_model(config.models[0])
    identify_partition(frame[:4], config)  # weights, and the cuBLAS workspace of a first pass
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    out = identify_partition(frame, config)
    assert out["error"].isna().all()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == baseline

    # a real out-of-memory: 64 clips x 30 s do not fit in 256 MiB more than the weights
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + 2**28) / total)
    try:
        tight = identify_partition(frame, config)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert tight["error"].isna().all(), tight["error"].dropna().tolist()[:3]
    np.testing.assert_allclose(
        tight["whisper_base_prob"], out["whisper_base_prob"], rtol=1e-3, atol=1e-4
    )
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == baseline
