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


class TorchPredictor(Predictor):
    """Runs a torch module in eval mode, with autocast (bf16) on CUDA."""

    def __init__(self, module: nn.Module, info: ModelInfo, device: torch.device, multi_label: bool = False):
        self.module = module.to(device).eval()
        self.info = info
        self._device = device
        self.multi_label = multi_label

    @property
    def device(self) -> torch.device:
        return self._device

    def _probabilities(self, logits: torch.Tensor, dim: int) -> np.ndarray:
        logits = logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=dim)
        return probs.cpu().numpy()

    @torch.inference_mode()
    def predict(self, waves: torch.Tensor) -> np.ndarray:
        waves = waves.to(self._device, non_blocking=True)
        with torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self._device.type == "cuda"):
            logits = self.module(waves)
        return self._probabilities(logits, dim=-1)

    @torch.inference_mode()
    def predict_frames(self, waves: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Frame activity from modules that have ``forward_frames``; the base class's single frame otherwise."""
        forward_frames = getattr(self.module, "forward_frames", None)
        if forward_frames is None:
            return super().predict_frames(waves)
        waves = waves.to(self._device, non_blocking=True)
        with torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self._device.type == "cuda"):
            clip, frames = forward_frames(waves)
        return self._probabilities(clip, dim=-1), self._probabilities(frames, dim=1)


def save_checkpoint(path: Path, module: nn.Module, info: ModelInfo) -> None:
    """Write a checkpoint dict (atomically) that :func:`read_checkpoint` can load safely."""
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
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
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
