"""A training run's resumable state (``.last.pt``), what an epoch leaves behind (written by the first process),
and the running mean of its last epochs' weights (``--average-tail``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from nsep.audio import atomic_output
from nsep.models.base import ModelInfo, save_checkpoint


def save_last(path: Path, model: torch.nn.Module, optimiser, schedule, loop: dict) -> None:
    """Model, optimiser and schedule states plus the loop's bookkeeping, written atomically."""
    with atomic_output(path, overwrite=True) as tmp:
        torch.save({"parts": {name: held.state_dict() for name, held in
                              (("model", model), ("optimiser", optimiser), ("schedule", schedule))},
                    "loop": loop}, tmp)


def restore_last(path: Path, model: torch.nn.Module, optimiser, schedule) -> dict:
    """Load a ``.last.pt`` into the training objects; returns the loop's bookkeeping."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for name, part in (("model", model), ("optimiser", optimiser), ("schedule", schedule)):
        part.load_state_dict(state["parts"][name])
    return state["loop"]


def end_epoch(out: Path, row: dict, improved: bool, model: torch.nn.Module, info: ModelInfo, optimiser, schedule,
              loop: dict) -> None:
    """Append the epoch's row to ``OUT.log.jsonl``, write ``OUT`` if it improved, and ``OUT.last.pt``."""
    with out.with_suffix(".log.jsonl").open("a") as log:
        log.write(json.dumps(row) + "\n")
    if improved:
        save_checkpoint(out, model, info)
    save_last(out.with_suffix(".last.pt"), model, optimiser, schedule, loop)


class TailAverage:
    """The running mean of a network's weights at the end of each epoch in the last ``share`` of a run
    (stochastic weight averaging, Izmailov et al. 2018): on the cosine's low-rate tail the epochs'
    weights scatter around a better point, and one noisy validation set cannot tell which epoch is
    nearest it. Integer buffers (BatchNorm's step counters) are the latest epoch's."""

    def __init__(self, share: float, state: dict | None = None):
        self.share = share
        self.mean: dict[str, torch.Tensor] | None = state["mean"] if state else None
        self.epochs: list[int] = list(state["epochs"]) if state else []

    def due(self, progress: float) -> bool:
        return self.share > 0 and progress >= 1 - self.share - 1e-9

    def add(self, model: torch.nn.Module, epoch: int) -> None:
        weights = {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()  # never the live tensor
                   for k, v in model.state_dict().items()}
        if self.mean is None:
            self.mean = weights
        else:
            n = len(self.epochs)
            for key, value in weights.items():
                self.mean[key] = self.mean[key] + (value - self.mean[key]) / (n + 1) if value.is_floating_point() else value
        self.epochs.append(epoch)

    def state(self) -> dict | None:
        return {"mean": self.mean, "epochs": self.epochs} if self.mean is not None else None

    def network(self, like: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``like`` holding the mean weights."""
        averaged = copy.deepcopy(like)
        averaged.load_state_dict(self.mean)
        return averaged


def average_path(out: Path) -> Path:
    """Where a run with ``average_tail`` writes its averaged weights: ``OUT.average.pt``."""
    return out.with_suffix(".average.pt")
