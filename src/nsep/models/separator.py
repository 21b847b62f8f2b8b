"""Separators the engine can run: nsep's own mask networks and demucs networks (one or a bag).

``load(name)`` resolves a model name (``bandsplit``, ``separate-unet``, ``htdemucs``...) or a path
(an nsep ``.pt`` checkpoint or a demucs ``.th`` package) to a ready :class:`Separator`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from nsep.errors import NsepError, UsageError
from nsep.models.base import pick_device, read_checkpoint
from nsep.models.fusion import fold_batchnorm
from nsep.models.groupnorm import ParallelGroupNorm
from nsep.models.masking import MaskSeparator
from nsep.separation import GATE_THRESHOLD, Separator

# demucs' stem names -> nsep's families (``other`` stays ``other``)
DEMUCS_STEMS = {"drums": "drums", "bass": "bass", "vocals": "vocal", "guitar": "guitar", "piano": "keyboard", "other": "other"}
DEFAULT = "separate-unet-bilstm"  # best validation SI-SDRi of the three, and fast on a CPU


class TorchSeparator(Separator):
    """An nsep mask network (mono in, one stem per family out), with bf16 autocast on CUDA."""

    def __init__(self, module: nn.Module, name: str, sources: list[str], sample_rate: int, segment: float,
                 device: torch.device, autocast: bool = True, gated: bool = False, gate_detector: str | None = None,
                 gate_threshold: float = GATE_THRESHOLD):
        self.module = module.to(device).eval()
        self.gated, self.gate_detector, self.gate_threshold = gated, gate_detector, gate_threshold
        self.name, self.sources, self.sample_rate, self.segment = name, sources, sample_rate, segment
        self.channels, self.device, self.autocast = 1, device, autocast and device.type == "cuda"
        self.allowed: torch.Tensor | None = None

    def gate(self, families: set[str] | None) -> None:
        if families is not None and not isinstance(self.module, MaskSeparator):
            super().gate(families)  # refuses
        self.allowed = None if families is None else torch.tensor([s in families for s in self.sources], device=self.device)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        wave = batch[:, 0].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.module(wave) if self.allowed is None else self.module(wave, self.allowed)
            return out.float()[:, :, None]


class DemucsSeparator(Separator):
    """A demucs network or ``BagOfModels``, run on nsep's grid; stems renamed to nsep's families."""

    normalise = True

    def __init__(self, model: nn.Module, name: str, device: torch.device, autocast: bool = False,
                 parallel_group_norm: bool = True):
        from demucs.apply import BagOfModels

        self.bag = model if isinstance(model, BagOfModels) else None
        self.networks = list(self.bag.models) if self.bag is not None else [model]
        weights = self.bag.weights if self.bag is not None else [[1.0] * len(model.sources)]
        # on the device once: a tensor made from a list during forward() would wait for the GPU
        self.weights = [torch.tensor(w, dtype=torch.float32, device=device)[None, :, None, None] for w in weights]
        self.norm = sum(self.weights)
        for network in self.networks:
            network.to(device).eval()
        first = self.networks[0]
        self.name, self.device, self.autocast = name, device, autocast and device.type == "cuda"
        self.parallel_group_norm = parallel_group_norm and device.type == "cuda"
        self.sources = [DEMUCS_STEMS.get(s, s) for s in model.sources]
        self.sample_rate, self.channels = int(model.samplerate), int(model.audio_channels)
        self.segment = float(model.segment if self.bag is None else self.bag.segment)
        self._valid = first.valid_length if hasattr(first, "valid_length") else (lambda n: n)

    def valid_length(self, length: int) -> int:
        return self._valid(length)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        total = 0.0
        with ParallelGroupNorm() if self.parallel_group_norm else contextlib.nullcontext():
            for network, weight in zip(self.networks, self.weights):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    out = network(batch).float()
                total = total + out * weight
        return total / self.norm


def _torch_separator(path: Path, name: str, device: torch.device, autocast: bool) -> TorchSeparator:
    from nsep.models import registry

    info, state = read_checkpoint(path)
    if info.task != "separate":
        raise UsageError(f"model {name!r} is a {info.task} model, not a separator")
    module = registry.build(info.architecture, len(info.labels), info.config)
    try:
        module.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as err:
        raise NsepError(f"{path}: weights do not fit architecture {info.architecture} ({err})") from None
    module = fold_batchnorm(module.eval())
    return TorchSeparator(module, name, list(info.labels), info.sample_rate, info.clip_seconds, device, autocast,
                          gated=bool(info.training.get("gated", False)), gate_detector=info.training.get("gate_detector"),
                          gate_threshold=info.training.get("gate_threshold", GATE_THRESHOLD))


def load(name: str | None, device: str = "auto", autocast: bool = True) -> Separator:
    """A ready separator for a model name or a weights path (``.pt`` nsep, ``.th`` demucs); on a GPU
    it runs in bf16 autocast unless ``autocast`` is false. On a CPU it stays in float32: bf16 would be
    1.4x as fast there but cost a few hundredths of a dB on validation, and the CPU is fast enough."""
    from nsep import repo

    name = name or DEFAULT
    chosen = pick_device(device)
    path = Path(name)
    if path.suffix in (".pt", ".th") and path.exists():
        if path.suffix == ".th":
            return DemucsSeparator(repo.load_demucs(path), path.stem, chosen, autocast)
        return _torch_separator(path, path.stem, chosen, autocast)
    known = {e.name: e for e in repo.manifest()}
    full = name if name in known else f"separate-{name}"
    if full not in known:
        raise UsageError(f"unknown separation model {name!r} (see `nsep models list`)")
    entry = known[full]
    if entry.architecture in ("htdemucs", "hdemucs", "demucs"):
        return DemucsSeparator(repo.load_demucs(entry), full, chosen, autocast)
    if entry.task != "separate":
        raise UsageError(f"model {full!r} is a {entry.task} model, not a separator")
    return _torch_separator(repo.fetch(entry), full, chosen, autocast)
