"""The language-identification model interface and the batching every family shares.

A family's work is split in two, as in lhotse's feature extractors:

* :meth:`LidModel.prepare` turns one waveform into features on the CPU (a log-mel spectrogram, a
  normalised waveform). The kernel calls it in its decode threads, so features are computed while
  the previous batch is in the model: this is the seam the GPU path overlaps decoding with compute
  through, and where voice activity will cut clips.
* :meth:`LidModel.forward` takes a padded :class:`Batch` on the model's device and returns
  probabilities.

Between them the base class does what every family would otherwise repeat: sorting clips by length
so a forward pass pads little (length bucketing), cutting them into passes of at most ``batch_size``
clips and ``batch_seconds`` of padded input, padding along the last (time) axis, relative lengths
and a mask, the move to the model's device and dtype, ``inference_mode``, a lock (one instance
serves every thread of a worker; torch modules are not re-entrant), and the trip back to a float32
numpy array. On a CUDA device the moves overlap compute (:mod:`lidframe.models.transfer`: pinned
host memory, a side stream, answers fetched one pass late). A family that would rather do everything
itself still only needs the minimal contract: ``labels`` plus :meth:`LidModel.predict_batch`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lidframe.errors import ModelError
from lidframe.models.spec import ModelSpec
from lidframe.models.transfer import DeviceCopier

if TYPE_CHECKING:
    import torch

__all__ = ["Batch", "LidModel", "quantize_int8", "resolve_device", "resolve_dtype"]


@dataclass(frozen=True)
class Batch:
    """Prepared features of several clips, padded along the last axis, on the model's device."""

    # ``(n, ..., longest)`` in the model's dtype (float features) or as prepared (integer ones).
    values: torch.Tensor
    # ``(n,)`` valid length of each clip along the last axis (int64).
    lengths: torch.Tensor

    @property
    def relative_lengths(self) -> torch.Tensor:
        """Each clip's length over the padded length, as SpeechBrain's ``wav_lens`` (float32)."""
        return self.lengths.float() / float(self.values.shape[-1])

    @property
    def mask(self) -> torch.Tensor:
        """``(n, longest)`` int64, 1 where a clip has values: a transformers ``attention_mask``."""
        import torch

        steps = torch.arange(self.values.shape[-1], device=self.values.device)
        return (steps[None, :] < self.lengths[:, None]).long()

    def __len__(self) -> int:
        return int(self.values.shape[0])


class LidModel(ABC):
    """A spoken-language classifier over mono waveforms at :attr:`sample_rate` (16 kHz unless a
    family says otherwise: the kernel resamples what it decoded to the rate a model takes).

    Subclasses load their weights in ``__init__`` (after ``super().__init__(spec)``) and implement
    either :meth:`forward` (and, when their input is not the waveform itself, :meth:`prepare`) or
    :meth:`predict_batch`. ``labels`` are canonical language codes (:func:`lidframe.languages.canonical`
    gives them), in the order of the probabilities' columns; the registry checks them on load.
    """

    # Samples per second of the waveforms :meth:`prepare` gets (a family at another rate sets it,
    # and :attr:`steps_per_second` for a waveform model).
    sample_rate: int = 16_000
    # Fewest samples (at :attr:`sample_rate`) a clip may have: shorter clips are ``too_short`` row
    # errors and never reach the model (one 25 ms analysis window at 16 kHz; raise it where a model
    # needs more).
    min_samples: int = 400
    # With full context, pad every batch to at least this many steps of the last axis (Whisper's
    # encoder was trained on exactly 3,000 frames); None pads to the longest clip of the batch.
    # Without it, a model pads to :meth:`padded_length` (default: the longest clip).
    pad_to: int | None = None
    # Clips per forward pass when :meth:`predict_prepared` is not told (the kernel tells it).
    batch_size: int = 8
    # Steps of the last axis per second of audio, to turn ``batch_seconds`` into steps: the sample
    # rate for waveform models, the frame rate for spectrogram ones (Whisper: 100).
    steps_per_second: float = 16_000
    # Whether the family can run in float16/bfloat16: dtype ``auto`` resolves to float32 for a
    # family that cannot (see :func:`resolve_dtype`).
    half_precision: bool = True
    # Whether ``auto`` may give bfloat16 on a CPU that computes it natively, for a job of many clips
    # and after the job's check against float32 (:func:`resolve_dtype`'s ``cpu_half``). Only a
    # family that measured it sets it: emulated or not, bfloat16 is not faster for every model.
    cpu_bfloat16: bool = False
    # Whether the family runs in ``int8`` on the CPU: it loads float32 weights (:attr:`load_dtype`)
    # and passes its torch modules through :func:`quantize_int8`. A family without it refuses int8.
    int8: bool = False

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.device = resolve_device(spec.device)
        self._lock = threading.Lock()
        self._copier = DeviceCopier(self.device)
        if spec.dtype == "int8":
            if not self.int8:
                raise ModelError(f"{spec.name}: this model family does not run in int8")
            if not self.device.startswith("cpu"):
                raise ModelError(
                    f"{spec.name}: int8 runs on the CPU only (on {self.device} use bfloat16, "
                    "float16 or auto)"
                )

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Canonical language codes, one per column of the probabilities."""

    def weights_digest(self) -> str | None:
        """``sha256:HEX`` of the weights this instance holds (:mod:`lidframe.models.digest`): the
        tensors of the torch modules in its attributes; None when it has none. Computed on first
        call and kept, so a process pays it once per model. A family whose weights live elsewhere
        overrides this."""
        with _DIGEST_LOCK:
            if not hasattr(self, "_weights_digest"):
                from lidframe.models.digest import tensors_digest, torch_modules

                self._weights_digest = tensors_digest(torch_modules(self))
            return self._weights_digest

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """One clip's features (CPU, thread-safe; the last axis is time). Default: the waveform."""
        return np.asarray(waveform, dtype=np.float32)

    def forward(self, batch: Batch) -> torch.Tensor | np.ndarray:
        """``(len(batch), len(labels))`` probabilities of a padded batch (rows sum to 1)."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither forward nor predict_batch"
        )

    def predict_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Return a ``(len(waveforms), len(labels))`` float32 array of probabilities."""
        return self.predict_prepared([self.prepare(w) for w in waveforms])

    def predict_prepared(
        self,
        features: Sequence[Any],
        batch_size: int | None = None,
        *,
        context: float | None = None,
        batch_seconds: float | None = None,
    ) -> np.ndarray:
        """Probabilities for clips already :meth:`prepare`-d, in the order given.

        Clips are sorted by length and cut into forward passes (:meth:`passes`: at most
        ``batch_size`` clips and ``batch_seconds`` of padded input each), so short clips are not
        padded to the longest of the call. ``context`` (seconds) lets a model with a fixed input
        length (:attr:`pad_to`) run on less, but on at least that much (:meth:`padded_length`);
        None: its full input length. A pass's answers are fetched after the next pass is queued,
        so on a GPU the next batch is padded and copied while the previous one computes.
        """
        out = np.zeros((len(features), len(self.labels)), dtype=np.float32)
        if not _implements_forward(self):
            # The family implements predict_batch itself, and prepare() is the identity for it:
            # its calls are cut into the same passes, so pass sizes (and out-of-memory halving)
            # hold for it too.
            for chosen in self.passes(
                features, batch_size, context=context, batch_seconds=batch_seconds
            ):
                got = np.asarray(self.predict_batch([features[i] for i in chosen]), np.float32)
                if got.shape != (len(chosen), len(self.labels)):
                    raise ModelError(
                        f"{self.spec.name}: predict_batch returned shape {got.shape} for "
                        f"{len(chosen)} clips and {len(self.labels)} labels"
                    )
                out[chosen] = got
            return out
        import torch

        pending: list[tuple[np.ndarray, Callable[[], np.ndarray]]] = []
        for chosen in self.passes(
            features, batch_size, context=context, batch_seconds=batch_seconds
        ):
            with self._lock, torch.inference_mode():
                probs = self.forward(self.collate([features[i] for i in chosen], context=context))
                pending.append((chosen, self._copier.to_host(probs)))
            del probs  # the pass's device memory goes back once its answers are copied
            if len(pending) > 1:
                done, fetch = pending.pop(0)
                out[done] = fetch()
        for done, fetch in pending:
            out[done] = fetch()
        return out

    def passes(
        self,
        features: Sequence[Any],
        batch_size: int | None = None,
        *,
        context: float | None = None,
        batch_seconds: float | None = None,
    ) -> list[np.ndarray]:
        """Positions of ``features`` in each forward pass: sorted by length (:meth:`input_steps`),
        at most ``batch_size`` clips a pass and, when ``batch_seconds`` is given, at most that many
        seconds of padded input (clips times :meth:`padded_length`, over :attr:`steps_per_second`);
        a clip longer than the budget has a pass of its own.

        A budget in seconds keeps one unit across families (samples, mel frames) and lets short
        clips share a pass in greater numbers than long ones at the same memory.
        """
        steps = np.array([self.input_steps(f) for f in features], dtype=np.int64)
        order = np.argsort(steps, kind="stable")
        most = max(1, int(batch_size or self.batch_size))
        budget = None if batch_seconds is None else batch_seconds * self.steps_per_second
        cut: list[np.ndarray] = []
        start = 0
        for end, i in enumerate(order):
            clips = end - start + 1  # the pass if clip i joins it; i is its longest (sorted)
            if clips > most or (
                budget is not None
                and clips > 1
                and clips * self.padded_length(int(steps[i]), context) > budget
            ):
                cut.append(order[start:end])
                start = end
        if len(order):
            cut.append(order[start:])
        return cut

    def input_steps(self, feature: Any) -> int:
        """Steps of the last axis of the batch one prepared clip needs (default: its last axis).

        A family whose :meth:`collate` turns features into something else (Whisper computing
        log-mel on the GPU from waveforms) says here how long the result is.
        """
        return int(np.shape(feature)[-1])

    @property
    def load_dtype(self) -> torch.dtype:
        """The dtype the weights are loaded in: the spec's, float32 for int8 (quantized after)."""
        import torch

        return torch.float32 if self.spec.dtype == "int8" else getattr(torch, self.spec.dtype)

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype floating features are cast to on the device (the spec's; float32 for int8,
        whose layers quantize their inputs themselves)."""
        return self.load_dtype

    def padded_length(self, longest: int, context: float | None = None) -> int:
        """Steps of the last axis a batch whose longest clip has ``longest`` is padded to.

        Default: :attr:`pad_to` (at least ``longest``) with full context (``context`` None), else
        ``longest``. A model that can run on fewer steps than it was trained on rounds up to a few
        lengths of at least ``context`` seconds here (or down a step: :meth:`collate` cuts what is
        longer).
        """
        return max(longest, self.pad_to or 0) if context is None else longest

    def collate(self, features: Sequence[np.ndarray], *, context: float | None = None) -> Batch:
        """Pad features along their last axis (zeros) and move them to the model's device."""
        import torch

        lengths = np.array([np.shape(f)[-1] for f in features], dtype=np.int64)
        longest = self.padded_length(int(lengths.max()), context)
        lengths = np.minimum(lengths, longest)  # a model may round a length down a little
        values = self.to_device(self.pad_host(features, longest))
        if values.is_floating_point():
            values = values.to(self.input_dtype)
        return Batch(values, self.to_device(torch.from_numpy(lengths)))

    def pad_host(self, features: Sequence[np.ndarray], longest: int) -> torch.Tensor:
        """Features in one zero-padded host tensor ``(n, ..., longest)``, cut at ``longest``
        (in pinned memory when the model is on CUDA, for :meth:`to_device`)."""
        first = np.asarray(features[0])
        padded = self._copier.zeros((len(features), *first.shape[:-1], longest), first.dtype)
        view = padded.numpy()
        for i, f in enumerate(features):
            n = min(np.shape(f)[-1], longest)
            view[i, ..., :n] = np.asarray(f)[..., :n]
        return padded

    def to_device(self, host: torch.Tensor) -> torch.Tensor:
        """A host tensor on the model's device (on CUDA: an async copy on a side stream that the
        compute stream waits for)."""
        return self._copier.to_device(host)


# One digest at a time per process: two partitions staging at once hash a model once.
_DIGEST_LOCK = threading.Lock()


def _implements_forward(model: LidModel) -> bool:
    return type(model).forward is not LidModel.forward


def implements_contract(cls: type[LidModel]) -> bool:
    """Whether a family class overrides :meth:`LidModel.forward` or :meth:`LidModel.predict_batch`."""
    return cls.forward is not LidModel.forward or cls.predict_batch is not LidModel.predict_batch


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """``module``, in place, with every ``nn.Linear``'s weight in int8 (one scale per output row)
    and its input quantized per token (one scale per row of the activations, computed as it runs),
    the rest in float32: what CTranslate2's ``int8`` compute type (faster-whisper's usual CPU
    setting) does, through torchao's ``Int8DynamicActivationInt8WeightConfig``.

    Per-token scales matter: Whisper's activations have outlier channels, and torch's older dynamic
    quantization (one scale per activation tensor) lost 4.5 points on real telephone speech where
    this loses none (benchmarks/RESULTS.md, "int8 per token"). torchao 0.15 is the release built for
    torch 2.9, the project's pin.
    """
    import warnings

    try:
        with warnings.catch_warnings():  # torchao's own import warns of its moved prototypes
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as exc:  # pragma: no cover - torchao is a dependency; a broken install
        raise ModelError(f"int8 needs torchao (pip install 'torchao>=0.15,<0.16'): {exc}") from exc
    quantize_(module, Int8DynamicActivationInt8WeightConfig())
    return module


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_cpu_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): elsewhere PyTorch emulates
    it, slower than float32."""
    import torch

    cpu = torch.cpu
    try:
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:  # pragma: no cover - a torch without the probes: do not guess
        return False


def resolve_dtype(
    dtype: str, device: str, half_precision: bool = True, *, cpu_half: bool = False
) -> str:
    """``auto`` -> the fastest dtype the device runs well; other values unchanged.

    bfloat16 on a CUDA device with native bfloat16 (compute capability 8.0 and later: emulated
    bfloat16 on older GPUs is slower than float32), float16 on an older CUDA device, float32 for a
    family that runs in float32 only (``half_precision`` False). On the CPU: float32, or bfloat16
    when ``cpu_half`` is true (a job planned large enough to earn its check back, for a family that
    measured it: :attr:`LidModel.cpu_bfloat16`) and the CPU computes bfloat16 natively
    (AVX512-BF16, AMX), where Whisper runs about twice as fast at equal accuracy
    (benchmarks/RESULTS.md). Every half-precision answer of ``auto`` is checked against float32
    before a job uses it (:mod:`lidframe.job`). Call it where the model loads: the answer depends on
    that machine's device.
    """
    if dtype != "auto":
        return dtype
    device = resolve_device(device)
    if not half_precision:
        return "float32"
    if not device.startswith("cuda"):
        cpu = device.startswith("cpu") and cpu_half and native_cpu_bfloat16()
        return "bfloat16" if cpu else "float32"
    import torch

    if not torch.cuda.is_available():
        return "float32"  # loading on this device fails anyway, with the family's own message
    index = torch.device(device).index
    with torch.cuda.device(torch.cuda.current_device() if index is None else index):
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    return "bfloat16" if native else "float16"
