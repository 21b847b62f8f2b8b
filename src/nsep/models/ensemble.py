"""Several trained classifiers as one model: the mean of their probabilities.

Members are networks that were trained apart (other seeds, other recipes) on the same labels; their
mistakes differ, so the mean is more accurate than each, for the cost of running them all.
:func:`combine` writes such a model as one ordinary checkpoint (architecture ``ensemble``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nsep.errors import UsageError
from nsep.models.base import ModelInfo, read_checkpoint, save_checkpoint
from nsep.models.cnn import CNNClassifier


class Ensemble(nn.Module):
    """Waveform ``[B, T]`` -> log of the members' mean probability ``[B, n_labels]`` (softmax gives the mean back)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0]
        # CNNs with one front end compute their spectrogram once (a third of a CNN's time on a CPU)
        self.shared_spectrogram = all(isinstance(m, CNNClassifier) and m.feature == first.feature for m in members)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.shared_spectrogram:
            spec = self.members[0].spectrogram(wave)
            logits = [member.classify_spectrogram(spec) for member in self.members]
        else:
            logits = [member(wave) for member in self.members]
        probabilities = torch.stack([x.float().softmax(dim=-1) for x in logits])
        return probabilities.mean(dim=0).clamp(min=1e-12).log()


def combine(paths: list[Path], out: Path, build) -> ModelInfo:
    """Write one ``ensemble`` checkpoint from classifier checkpoints; ``build`` makes a member network
    from its architecture name, label count and config (the registry's). An ensemble given as a
    member contributes its members, so every network weighs the same."""
    if len(paths) < 2:
        raise UsageError("an ensemble needs at least two members")
    members: list[dict] = []
    states: list[dict[str, torch.Tensor]] = []
    infos = []
    for path in paths:
        info, state = read_checkpoint(path)
        if info.task != "classify":
            raise UsageError(f"{path}: only classifiers can be members (this is a {info.task} {info.architecture})")
        if infos and (info.labels, info.sample_rate, info.clip_samples) != (infos[0].labels, infos[0].sample_rate,
                                                                            infos[0].clip_samples):
            raise UsageError(f"{path}: its labels, sample rate or window differ from {paths[0]}'s")
        infos.append(info)
        if info.architecture == "ensemble":
            for i, member in enumerate(info.config["members"]):
                prefix = f"members.{i}."
                members.append(member)
                states.append({key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)})
        else:
            members.append({"architecture": info.architecture, "config": info.config})
            states.append(state)
    first = infos[0]
    module = Ensemble([build(m["architecture"], len(first.labels), m["config"]) for m in members])
    for member, state in zip(module.members, states):
        member.load_state_dict(state)
    info = ModelInfo(name=out.stem, architecture="ensemble", task="classify", labels=list(first.labels),
                     sample_rate=first.sample_rate, clip_samples=first.clip_samples, config={"members": members},
                     training={"members": [{"file": p.name, "metrics": i.metrics, "training": i.training}
                                           for p, i in zip(paths, infos)]})
    save_checkpoint(out, module, info)
    return info
