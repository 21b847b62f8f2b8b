"""Model names -> architectures, weights and predictors; ``--model NAME`` means the same everywhere.

A name is a manifest entry (``classify-cnn``), a short architecture name completed by the task
(``cnn`` in ``nsep classify`` means ``classify-cnn``), or a path to a weights file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from nsep.errors import NsepError, UsageError
from nsep.models.base import Predictor, TorchPredictor, pick_device, read_checkpoint
from nsep.models.bandsplit import BandSplitSeparator
from nsep.models.cnn import CNNClassifier
from nsep.models.detector import CNNDetector
from nsep.models.ensemble import Ensemble
from nsep.models.fusion import fold_batchnorm
from nsep.models.htdemucs import HTDemucsSeparator
from nsep.models.mlp import MLP
from nsep.models.resnet import ResNet18Classifier
from nsep.models.seedcnn import SeedCNN
from nsep.models.unet import UNetSeparator, unet_bilstm

TORCH_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "cnn": CNNClassifier, "resnet18": ResNet18Classifier, "detector": CNNDetector, "mlp": MLP, "seedcnn": SeedCNN,
    "unet": UNetSeparator, "unet-bilstm": unet_bilstm, "bandsplit": BandSplitSeparator, "htdemucs": HTDemucsSeparator,
}


def _ensemble(n_labels: int, members: list[dict], detector: dict | None = None,
              detector_index: list[int] | None = None, detector_weight: float = 1.0,
              detector_samples: int | None = None, temperature: float = 1.0) -> Ensemble:
    judge = build(detector["architecture"], len(detector["labels"]), detector["config"]) if detector else None
    return Ensemble([build(m["architecture"], n_labels, m["config"]) for m in members], judge, detector_index,
                    detector_weight, detector_samples, temperature)


TORCH_ARCHITECTURES["ensemble"] = _ensemble
ARCHITECTURES = (*TORCH_ARCHITECTURES, "xgb")
DEFAULT_MODELS = {"classify": "classify-cnn-detect", "detect": "detect-cnn"}
MULTI_LABEL_TASKS = {"detect"}


def build(architecture: str, n_labels: int, config: dict | None = None) -> nn.Module:
    """A fresh torch network of a named architecture."""
    if architecture not in TORCH_ARCHITECTURES:
        raise UsageError(f"unknown architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")
    return TORCH_ARCHITECTURES[architecture](n_labels, **(config or {}))


def locate(name: str | None, task: str) -> tuple[Path, str]:
    """The weights file behind a model name or path, fetched and verified through the repository."""
    from nsep import repo

    name = name or DEFAULT_MODELS[task]
    if Path(name).suffix in (".pt", ".ubj") and Path(name).exists():
        return Path(name), Path(name).stem
    known = {e.name for e in repo.manifest()}
    full = name if name in known else f"{task}-{name}"
    if full not in known:
        raise UsageError(f"unknown model {name!r} for {task} (see `nsep models list`)")
    return repo.fetch(full), full


def load(name: str | None, task: str, device: str = "auto", autocast: bool = True) -> Predictor:
    """A ready predictor for a model name or weights path; torch networks run in bf16 autocast where
    it pays (:func:`~nsep.models.base.bf16_pays`) unless ``autocast`` is false."""
    path, resolved = locate(name, task)
    if path.suffix == ".ubj":
        from nsep.models.xgb import XGBPredictor

        predictor: Predictor = XGBPredictor(path, resolved)
    else:
        info, state = read_checkpoint(path)
        info.name = resolved
        module = build(info.architecture, len(info.labels), info.config)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise NsepError(f"{path}: weights do not fit architecture {info.architecture} ({err})") from None
        module = fold_batchnorm(module.eval())
        predictor = TorchPredictor(module, info, pick_device(device), multi_label=info.task in MULTI_LABEL_TASKS,
                                   autocast=autocast)
    if predictor.info.task != task:
        raise UsageError(f"model {resolved!r} is a {predictor.info.task} model, not {task}")
    return predictor

