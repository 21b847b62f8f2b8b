"""Add (or replace) a trained weights file in weights/manifest.json, with its held-out metrics.

Usage: python scripts/register_model.py weights/classify-cnn.pt --name classify-cnn \
           --description "..." --training-data "..." --command "..." [--metrics KEY=FILE.json ...]
Each metrics file is a JSON document (e.g. from `nsep eval ... --json`); its headline numbers are
stored under KEY. Labels, sample rate and the architecture come from the weights file itself.
`--gate-detector NAME` first records in a separator's weights file the detector its gate was chosen
with (`nsep separate` and `nsep eval separate` gate with it unless given --detect-model). A separator's
gate settings (detector, presence threshold) are copied from its weights file into the manifest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nsep import repo

HEADLINE = ("accuracy", "notes", "nll", "ece", "per_family", "map", "micro_f1", "macro_f1", "frame_f1", "per_label_accuracy",
            "mixtures", "mode", "overall", "by_k", "by_family", "only")


def _info(path: Path) -> dict:
    if path.suffix == ".ubj":
        from nsep.models.xgb import XGBPredictor

        info = XGBPredictor(path, path.stem).info
    else:
        from nsep.models.base import read_checkpoint

        info, _ = read_checkpoint(path)
    training = info.training or {}
    return {"task": info.task, "architecture": info.architecture, "labels": info.labels,
            "sample_rate": info.sample_rate, "valid": info.metrics,
            "gate": {key: training[key] for key in ("gate_detector", "gate_threshold") if key in training}}


def _record_gate_detector(path: Path, detector: str) -> None:
    from nsep.models.base import read_checkpoint, save_state

    info, state = read_checkpoint(path)
    if info.task != "separate":
        raise SystemExit(f"{path}: --gate-detector is for separators, not {info.task} models")
    info.training["gate_detector"] = detector
    save_state(path, state, info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--training-data", required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--metrics", nargs="*", default=[], help="KEY=FILE.json")
    parser.add_argument("--gate-detector", help="the detector a separator's gate was chosen with")
    args = parser.parse_args()
    if args.gate_detector:
        _record_gate_detector(args.file, args.gate_detector)
    info = _info(args.file)
    metrics = {"validation": info["valid"]} if info["valid"] else {}
    for item in args.metrics:
        key, file = item.split("=", 1)
        data = json.loads(Path(file).read_text())
        metrics[key] = {k: data[k] for k in HEADLINE if k in data}  # headline numbers first (`nsep models list`)
    entry = repo.ModelEntry(name=args.name, task=info["task"], architecture=info["architecture"],
                            sample_rate=info["sample_rate"], channels=1, labels=info["labels"],
                            description=args.description, training={"data": args.training_data, "command": args.command,
                                                                    **info["gate"]},
                            metrics=metrics)
    written = repo.register(entry, args.file, Path("weights/manifest.json"))
    print(f"{written.name}: {written.size} bytes, sha256 {written.sha256}")


if __name__ == "__main__":
    main()
