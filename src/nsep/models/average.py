"""Weight averaging: fine-tunes of one network averaged tensor by tensor into one network.

Networks fine-tuned from the same weights stay close enough that the mean of their parameters is
itself a working network, often better than each (a "model soup", Wortsman et al. 2022), and it
costs one network to run. :mod:`nsep.models.ensemble` averages predictions instead, at the cost of
running every member; averaging weights needs members of one architecture, configuration and
label list, trained from one start (networks trained apart do not average).
"""

from __future__ import annotations

from pathlib import Path

import torch

from nsep.errors import UsageError
from nsep.models.base import ModelInfo, read_checkpoint, save_state


def _same_network(info: ModelInfo, first: ModelInfo) -> bool:
    key = lambda i: (i.task, i.architecture, i.config, i.labels, i.sample_rate, i.clip_samples)  # noqa: E731
    return key(info) == key(first)


def _mean_thresholds(values: list[list[float] | None]) -> list[float] | None:
    if any(v is None for v in values):
        return None
    return [round(float(sum(column) / len(column)), 4) for column in zip(*values)]


def average(paths: list[Path], out: Path, float16: bool = False) -> ModelInfo:
    """Write the tensor-by-tensor mean of the checkpoints at ``paths`` to ``out``.

    Floating-point tensors are averaged (stored as float16 with ``float16``); integer buffers
    (BatchNorm's step counters) are the first member's. Decision thresholds are the members' mean,
    and the training record keeps the members' records and what they all agree on (e.g. ``gated``).
    """
    if len(paths) < 2:
        raise UsageError("averaging needs at least two weights files")
    loaded = [read_checkpoint(path) for path in paths]
    first, reference = loaded[0]
    for path, (info, state) in zip(paths[1:], loaded[1:]):
        if not _same_network(info, first):
            raise UsageError(f"{path}: not the same network as {paths[0]} (task, architecture, configuration, "
                             "labels or window differ)")
        if state.keys() != reference.keys() or any(state[k].shape != reference[k].shape for k in reference):
            raise UsageError(f"{path}: its tensors do not match {paths[0]}'s")
    averaged = {}
    for key, value in reference.items():
        if value.is_floating_point():
            mean = torch.stack([state[key].float() for _, state in loaded]).mean(dim=0)
            averaged[key] = mean.half() if float16 else mean
        else:
            averaged[key] = value.clone()
    infos = [info for info, _ in loaded]
    shared = {key: value for key, value in first.training.items() if all(i.training.get(key) == value for i in infos)}
    info = ModelInfo(
        name=out.stem, architecture=first.architecture, task=first.task, labels=list(first.labels),
        sample_rate=first.sample_rate, clip_samples=first.clip_samples, config=dict(first.config),
        thresholds=_mean_thresholds([i.thresholds for i in infos]),
        frame_thresholds=_mean_thresholds([i.frame_thresholds for i in infos]),
        training={**shared, "averaged": [{"file": p.name, "metrics": i.metrics, "training": i.training}
                                         for p, i in zip(paths, infos)]},
    )
    save_state(out, averaged, info)
    return info
