"""A training run's resumable state (``.last.pt``) and what an epoch leaves behind, written by the first process."""

from __future__ import annotations

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
