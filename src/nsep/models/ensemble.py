"""Several trained classifiers as one model: the mean of their probabilities.

Members are networks that were trained apart (other seeds, other recipes) on the same labels; their
mistakes differ, so the mean is more accurate than each, for the cost of running them all.
An ensemble may also hold a trained detector: each family's probability is then multiplied by
the detector's presence of that family and the product renormalised (a product of experts), so a
network trained on mixtures votes on single clips too. The detector may judge only the first seconds
of each window (``detector_samples``): it costs several classifiers, and a note's attack carries
most of what it adds. Two experts that agree make an overconfident product; a ``temperature``
above 1 (chosen on validation by log-likelihood) softens it without changing the decision.
:func:`combine` writes such a model as one ordinary checkpoint (architecture ``ensemble``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from nsep.errors import UsageError
from nsep.models.base import ModelInfo, read_checkpoint, save_checkpoint
from nsep.models.cnn import CNNClassifier


class Ensemble(nn.Module):
    """Waveform ``[B, T]`` -> log of the members' mean probability ``[B, n_labels]`` (softmax gives the mean back).

    With a ``detector`` (clip logits over its own labels; ``detector_index[i]`` is the detector label
    of the ensemble's label ``i``), the mean is weighed by ``sigmoid(detector) ** detector_weight``
    and renormalised; the detector sees the first ``detector_samples`` samples (all if None). The
    result's log-probabilities are divided by ``temperature``.
    """

    def __init__(self, members: list[nn.Module], detector: nn.Module | None = None,
                 detector_index: list[int] | None = None, detector_weight: float = 1.0,
                 detector_samples: int | None = None, temperature: float = 1.0):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.detector = detector
        if detector is not None:
            self.register_buffer("detector_index", torch.tensor(detector_index, dtype=torch.long), persistent=False)
        self.detector_weight = detector_weight
        self.detector_samples = detector_samples
        self.temperature = temperature
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
        log_mean = probabilities.mean(dim=0).clamp(min=1e-12).log()
        if self.detector is not None:
            presence = F.logsigmoid(self.detector(wave[..., :self.detector_samples]).float()).index_select(-1, self.detector_index)
            log_mean = log_mean + self.detector_weight * presence
        return (log_mean / self.temperature).log_softmax(dim=-1)


def combine(paths: list[Path], out: Path, build, detector: Path | None = None,
            detector_weight: float = 1.0, detector_seconds: float | None = None, temperature: float = 1.0) -> ModelInfo:
    """Write one ``ensemble`` checkpoint from classifier checkpoints; ``build`` makes a network from
    its architecture name, label count and config (the registry's). An ensemble given as a
    member contributes its members, so every network weighs the same. ``detector``, a detector
    checkpoint whose labels include every classifier label, weighs the members' mean (one member
    is then enough), judging the first ``detector_seconds`` of each window (all of it if None).
    ``temperature`` divides the combined log-probabilities."""
    if len(paths) < (1 if detector else 2):
        raise UsageError("an ensemble needs at least two members, or one and a detector")
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
        if info.architecture == "ensemble" and info.config.get("detector"):
            raise UsageError(f"{path}: an ensemble with a detector cannot be a member")
        if info.architecture == "ensemble":
            for i, member in enumerate(info.config["members"]):
                prefix = f"members.{i}."
                members.append(member)
                states.append({key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)})
        else:
            members.append({"architecture": info.architecture, "config": info.config})
            states.append(state)
    first = infos[0]
    config: dict = {"members": members, **({"temperature": temperature} if temperature != 1.0 else {})}
    training: dict = {"members": [{"file": p.name, "metrics": i.metrics, "training": i.training}
                                  for p, i in zip(paths, infos)]}
    judge_state: dict[str, torch.Tensor] = {}
    if detector is not None:
        judge_info, judge_state = read_checkpoint(detector)
        missing = sorted(set(first.labels) - set(judge_info.labels))
        if judge_info.task != "detect" or missing or (judge_info.sample_rate, judge_info.clip_samples) != (
                first.sample_rate, first.clip_samples):
            raise UsageError(f"{detector}: not a detector of these labels at this sample rate and window"
                             + (f" (lacks {', '.join(missing)})" if missing else ""))
        config.update(detector={"architecture": judge_info.architecture, "config": judge_info.config,
                                "labels": list(judge_info.labels)},
                      detector_index=[judge_info.labels.index(label) for label in first.labels],
                      detector_weight=detector_weight,
                      detector_samples=None if detector_seconds is None else int(round(detector_seconds * first.sample_rate)))
        training["detector"] = {"file": detector.name, "metrics": judge_info.metrics, "training": judge_info.training}
    module = build("ensemble", len(first.labels), config)
    for member, state in zip(module.members, states):
        member.load_state_dict(state)
    if module.detector is not None:
        module.detector.load_state_dict(judge_state)
    info = ModelInfo(name=out.stem, architecture="ensemble", task="classify", labels=list(first.labels),
                     sample_rate=first.sample_rate, clip_samples=first.clip_samples, config=config,
                     training=training)
    save_checkpoint(out, module, info)
    return info
