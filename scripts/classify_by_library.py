"""Accuracy of a classifier on each bank's notes (e.g. the valid notes of every training library), and,
with --offsets, whether per-family log-probability offsets fitted on the other banks help each bank.

Usage: python scripts/classify_by_library.py MODEL BANK... [--split valid] [--offsets] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nsep import engine
from nsep.data.nsynth import load_bank
from nsep.models import registry


def probabilities(model: str, banks: list[str], split: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Probabilities ``[N, families]``, true family indices and bank names of the banks' notes."""
    predictor = registry.load(model, "classify", "cpu")
    labels = predictor.info.labels
    notes, names = [], []
    for bank in banks:
        kept = [e for e in load_bank(bank, split=split) if e.instrument_family_str in labels]
        notes += kept
        names += [Path(bank).name] * len(kept)
    probs = np.full((len(notes), len(labels)), np.nan, dtype=np.float32)
    for result in engine.run(predictor, [str(e.path) for e in notes], None, None):
        if not result.error:
            probs[result.index] = engine.combine(result)
    truth = np.asarray([labels.index(e.instrument_family_str) for e in notes])
    ok = ~np.isnan(probs).any(axis=1)
    return probs[ok], truth[ok], np.asarray(names)[ok], labels


def accuracy(logp: np.ndarray, truth: np.ndarray, offsets: np.ndarray | float = 0.0, weights=None) -> float:
    return float(np.average((logp + offsets).argmax(axis=1) == truth, weights=weights))


def fit_offsets(logp: np.ndarray, truth: np.ndarray, weights: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-family offsets maximising weighted accuracy, one family at a time over a grid of -2..2."""
    offsets = np.zeros(logp.shape[1])
    for _ in range(rounds):
        for family in range(logp.shape[1]):
            best, best_value = accuracy(logp, truth, offsets, weights), offsets[family]
            for value in np.linspace(-2, 2, 41):
                trial = offsets.copy()
                trial[family] = value
                score = accuracy(logp, truth, trial, weights)
                if score > best + 1e-9:
                    best, best_value = score, value
            offsets[family] = best_value
    return offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("banks", nargs="+")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--offsets", action="store_true", help="leave-one-bank-out check of per-family offsets")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    probs, truth, names, labels = probabilities(args.model, args.banks, args.split)
    logp = np.log(np.clip(probs, 1e-8, 1.0))
    report: dict = {"model": args.model, "split": args.split, "notes": len(truth),
                    "accuracy": round(accuracy(logp, truth), 4), "by_bank": {}}
    for bank in np.unique(names):
        here = names == bank
        row = {"notes": int(here.sum()), "accuracy": round(accuracy(logp[here], truth[here]), 4)}
        if args.offsets:  # every other bank weighs the same, whatever its size
            weights = np.zeros(len(truth))
            for other in np.unique(names[~here]):
                weights[names == other] = 1.0 / (names == other).sum()
            offsets = fit_offsets(logp[~here], truth[~here], weights[~here])
            row["accuracy_with_offsets_of_the_others"] = round(accuracy(logp[here], truth[here], offsets), 4)
        report["by_bank"][str(bank)] = row
        print(bank, json.dumps(row), flush=True)
    print("all", report["accuracy"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
