"""Score a detection model on the real recordings of realdev/mixes (evaluation only, never tuning).

Per item: each known-present family's probability and whether it was found, and the known-absent
families wrongly reported. Over all items: each family's average precision over the items where
its presence is known (unknown labels masked, as OpenMIC-2018 scores), and their mean.

Usage: python scripts/realdev_detect.py --model MODEL [--realdev DIR] [--json OUT.json] [--device cpu]
Prints a Markdown table for docs/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nsep import detection, metrics
from nsep.models import registry

REALDEV = Path(__file__).resolve().parents[2] / "shared" / "realdev"


def score(model: str, realdev: Path, device: str) -> dict:
    items = json.loads((realdev / "mixes" / "mixes.json").read_text())
    predictor = registry.load(model, "detect", device)
    labels = predictor.info.labels
    thresholds = detection.Thresholds.of(predictor.info)
    paths = [str(realdev / item["mixture"]) for item in items]
    probs = np.zeros((len(items), len(labels)))
    truth = np.zeros_like(probs, dtype=bool)
    known = np.ones_like(truth)
    rows = []
    for result, item in zip(detection.run(predictor, paths, thresholds, min_duration=0.5), items):
        if result.error:
            raise SystemExit(result.error)
        i = result.index
        probs[i] = result.present
        for family in item["labels_present"]:
            truth[i, labels.index(family)] = True
        for family in item["labels_unknown"]:
            known[i, labels.index(family)] = False
        found = {f: round(float(probs[i, labels.index(f)]), 3) for f in item["labels_present"]}
        wrong = [f for j, f in enumerate(labels) if known[i, j] and not truth[i, j] and probs[i, j] >= thresholds.clip[j]]
        rows.append({"name": item["name"], "present": found,
                     "missed": [f for f, p in found.items() if p < thresholds.clip[labels.index(f)]],
                     "false_positives": wrong})
    ap = {f: metrics.average_precision(probs[known[:, j], j], truth[known[:, j], j]) for j, f in enumerate(labels)}
    scored = {f: round(v, 4) for f, v in ap.items() if np.isfinite(v)}
    return {"model": predictor.info.name, "items": rows, "ap": scored,
            "map": round(float(np.mean(list(scored.values()))), 4),
            "found_all": sum(not r["missed"] for r in rows)}


def markdown(result: dict) -> str:
    lines = ["| item | known present (probability) | missed | false positives |", "|---|---|---|---|"]
    for r in result["items"]:
        present = ", ".join(f"{f} {p:.2f}" for f, p in r["present"].items())
        lines.append(f"| {r['name']} | {present} | {', '.join(r['missed']) or '-'} | {', '.join(r['false_positives']) or '-'} |")
    aps = ", ".join(f"{f} {v:.3f}" for f, v in result["ap"].items())
    lines.append(f"\n{result['model']}: mAP {result['map']:.3f} over known labels ({aps}); "
                 f"every known-present family found in {result['found_all']} of {len(result['items'])} items.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--realdev", type=Path, default=REALDEV)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    result = score(args.model, args.realdev, args.device)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
