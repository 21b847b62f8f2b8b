"""One predictor interface for every model (torch networks and XGBoost alike), and checkpoints.

A checkpoint is a plain dict (tensors and JSON-like values), loadable with ``weights_only=True``:
``format, architecture, task, config, labels, sample_rate, clip_samples, state_dict`` plus optional
``thresholds``, ``metrics`` and ``training``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT_FORMAT = "nsep-1"


@dataclass
class ModelInfo:
    """What a predictor needs to know about its inputs and outputs."""

    name: str
    architecture: str
    task: str
    labels: list[str]
    sample_rate: int
    clip_samples: int
    config: dict[str, Any] = field(default_factory=dict)
    thresholds: list[float] | None = None  # multi-label decisions per label, chosen on validation
    frame_thresholds: list[float] | None = None  # the same for frame activity (timelines); None: as ``thresholds``
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate


class Later:
    """Arrays on their way to the host: from a GPU they are copied into pinned memory without
    waiting, so the caller can queue the next batch before :meth:`get` waits for these."""

    def __init__(self, *values: torch.Tensor | np.ndarray):
        self.values: list[torch.Tensor | np.ndarray] = []
        self.copied: torch.cuda.Event | None = None
        self.add(*values)

    def add(self, *values: torch.Tensor | np.ndarray) -> Later:
        """More arrays, after those already on their way (one event, recorded last, covers all)."""
        queued = False
        for value in values:
            if isinstance(value, torch.Tensor) and value.device.type == "cuda":
                value = torch.empty(value.shape, dtype=value.dtype, pin_memory=True).copy_(value, non_blocking=True)
                queued = True
            self.values.append(value)
        if queued:
            self.copied = torch.cuda.Event()
            self.copied.record()
        return self

    def wait(self) -> list[torch.Tensor | np.ndarray]:
        """The values on the host, once their copies are done."""
        if self.copied is not None:
            self.copied.synchronize()
        return self.values

    def get(self) -> list[np.ndarray]:
        return [v.numpy() if isinstance(v, torch.Tensor) else v for v in self.wait()]


class Predictor(ABC):
    """Waveforms ``[B, clip_samples]`` at ``info.sample_rate`` -> probabilities ``[B, labels]``."""

    info: ModelInfo

    @abstractmethod
    def predict(self, waves: torch.Tensor) -> np.ndarray: ...

    def predict_frames(self, waves: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Clip probabilities ``[B, labels]`` and activity over time ``[B, labels, frames]``.

        Frames split the clip evenly; a model without a time axis gives one frame, its clip output.
        """
        clip = self.predict(waves)
        return clip, clip[:, :, None]

    def submit(self, waves: torch.Tensor, frames: bool = False) -> Later:
        """:meth:`predict` (or :meth:`predict_frames`) without waiting for a GPU; ``get()`` the arrays."""
        return Later(*self.predict_frames(waves)) if frames else Later(self.predict(waves))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then MPS, then the CPU; otherwise the named device, checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from nsep.errors import UsageError

        raise UsageError(f"--device {name}: CUDA is not available here")
    return device


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 autocast speeds ``device`` up: CUDA, or a CPU with native bf16 arithmetic
    (AVX512-BF16 or AMX; elsewhere oneDNN emulates it and float32 is faster)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    native = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in native)


class TorchPredictor(Predictor):
    """Runs a torch module in eval mode, with bf16 autocast where it pays (:func:`bf16_pays`) unless
    ``autocast`` is false."""

    def __init__(self, module: nn.Module, info: ModelInfo, device: torch.device, multi_label: bool = False,
                 autocast: bool = True):
        self.module = module.to(device).eval()
        self.info = info
        self._device = device
        self.multi_label = multi_label
        self.autocast = autocast and bf16_pays(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def _probabilities(self, logits: torch.Tensor, dim: int) -> torch.Tensor:
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=dim)

    @torch.inference_mode()
    def _outputs(self, waves: torch.Tensor, frames: bool) -> list[torch.Tensor]:
        """Probabilities on the device: ``[clip]``, or ``[clip, frames]`` (one frame for modules
        without ``forward_frames``)."""
        waves = waves.to(self._device, non_blocking=True)
        forward_frames = getattr(self.module, "forward_frames", None) if frames else None
        with torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if forward_frames is None:
                clip = self._probabilities(self.module(waves), dim=-1)
                return [clip, clip[:, :, None]] if frames else [clip]
            clip, activity = forward_frames(waves)
            return [self._probabilities(clip, dim=-1), self._probabilities(activity, dim=1)]

    def submit(self, waves: torch.Tensor, frames: bool = False) -> Later:
        return Later(*self._outputs(waves, frames))

    def predict(self, waves: torch.Tensor) -> np.ndarray:
        return self.submit(waves).get()[0]

    def predict_frames(self, waves: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Frame activity from modules that have ``forward_frames``; the base class's single frame otherwise."""
        clip, frames = self.submit(waves, frames=True).get()
        return clip, frames


def save_checkpoint(path: Path, module: nn.Module, info: ModelInfo) -> None:
    """Write a checkpoint dict (atomically) that :func:`read_checkpoint` can load safely."""
    save_state(path, {k: v.detach().cpu() for k, v in module.state_dict().items()}, info)


def save_state(path: Path, state: dict[str, torch.Tensor], info: ModelInfo) -> None:
    """:func:`save_checkpoint` for a state dict of CPU tensors."""
    from nsep.audio import atomic_output

    payload = {
        "format": CHECKPOINT_FORMAT,
        "architecture": info.architecture,
        "task": info.task,
        "config": info.config,
        "labels": info.labels,
        "sample_rate": info.sample_rate,
        "clip_samples": info.clip_samples,
        "thresholds": info.thresholds,
        "frame_thresholds": info.frame_thresholds,
        "metrics": info.metrics,
        "training": info.training,
        "state_dict": state,
    }
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    from nsep.errors import NsepError

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable or unsafe file gets the same clear refusal
        raise NsepError(f"{path}: not a loadable nsep checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise NsepError(f"{path}: not an nsep checkpoint")
    info = ModelInfo(
        name=Path(path).stem,
        architecture=payload["architecture"],
        task=payload["task"],
        labels=list(payload["labels"]),
        sample_rate=int(payload["sample_rate"]),
        clip_samples=int(payload["clip_samples"]),
        config=dict(payload.get("config") or {}),
        thresholds=payload.get("thresholds"),
        frame_thresholds=payload.get("frame_thresholds"),
        metrics=dict(payload.get("metrics") or {}),
        training=dict(payload.get("training") or {}),
    )
    return info, payload["state_dict"]
