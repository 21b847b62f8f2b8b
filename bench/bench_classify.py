"""Benchmark ``nsep classify`` (or ``nsep detect``) end to end from wav files: clips per second and accuracy.

Run: ``python bench/bench_classify.py --data BANK [--task classify|detect] [--clips 2000]
[--models classify-cnn classify-xgb] [--device cpu] [--repeat 3] [--fp32]``. BANK is an NSynth-format folder (e.g. a TimGM6mb render from
``nsep data render``); clips are drawn from it with a fixed seed. Each run is a fresh process
(start-up and model loading included); the table shows the median of the runs, and the start-up
alone (the median of runs on one clip), so the rate after start-up can be read off. Accuracy is the
share of clips whose family is the top family (classify) or among the detected labels (detect).
Writes JSON to ``bench/results/<task>-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import machine, measure

RESULTS = Path(__file__).parent / "results"


def copies(truth: dict[str, str], folder: Path, n: int) -> dict[str, str]:
    """``n`` real copies of each clip (not links: nsep counts a file once however it is named)."""
    copied = {}
    for i in range(n):
        (folder / f"copy{i}").mkdir()
        for path, family in truth.items():
            target = folder / f"copy{i}" / Path(path).name
            shutil.copyfile(path, target)
            copied[str(target)] = family
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--task", choices=("classify", "detect"), default="classify")
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fp32", action="store_true", help="Pass --fp32 (float32, no bf16 autocast).")
    parser.add_argument("--copies", type=int, default=1,
                        help="Run on this many real copies of every chosen clip (distinct files), for long runs.")
    args = parser.parse_args()

    from nsep.data.nsynth import load_bank
    from nsep.models.registry import DEFAULT_MODELS

    args.models = args.models or [DEFAULT_MODELS[args.task]]
    examples = load_bank(args.data)
    rng = np.random.default_rng(0)
    chosen = [examples[i] for i in sorted(rng.choice(len(examples), min(args.clips, len(examples)), replace=False))]
    truth = {str(e.path): e.instrument_family_str for e in chosen}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.copies > 1:
            truth = copies(truth, Path(tmp), args.copies)
        listing = Path(tmp) / "files.txt"
        listing.write_text("\n".join(truth) + "\n")
        for model in args.models:
            extra = ["--device", args.device]
            if args.batch_size:
                extra += ["--batch-size", str(args.batch_size)]
            if args.workers is not None:
                extra += ["--workers", str(args.workers)]
            if args.fp32:
                extra.append("--fp32")
            runs = []
            for _ in range(args.repeat):
                out = Path(tmp) / "out.jsonl"
                with out.open("w") as handle:
                    runs.append(measure(["-q", args.task, "--files-from", str(listing), "--model", model, "--jsonl", *extra],
                                        stdout=handle))
            predictions = [json.loads(line) for line in out.read_text().splitlines()]
            hit = (lambda p: p["family"] == truth[p["path"]]) if args.task == "classify" else (lambda p: truth[p["path"]] in p["labels"])
            accuracy = float(np.mean([hit(p) for p in predictions]))
            wall = statistics.median(r["wall_s"] for r in runs)
            first = Path(tmp) / "one.txt"
            first.write_text(next(iter(truth)) + "\n")
            startup = statistics.median(measure(["-q", args.task, "--files-from", str(first), "--model", model, *extra])["wall_s"]
                                        for _ in range(args.repeat))
            rows[model] = {"clips": len(truth), "median_wall_s": wall, "clips_per_s": round(len(truth) / wall, 1),
                           "startup_s": startup, "clips_per_s_after_startup": round(len(truth) / max(wall - startup, 1e-3), 1),
                           "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "accuracy": round(accuracy, 4),
                           "runs": runs, "args": extra}
            print(f"{model}: {rows[model]}", file=sys.stderr)
    print(f"{'model':<22} {'clips':>6} {'median wall (s)':>16} {'clips/s':>8} {'start-up (s)':>12} "
          f"{'clips/s after start-up':>22} {'accuracy':>9} {'peak RSS (MB)':>14}")
    for model, row in rows.items():
        print(f"{model:<22} {row['clips']:>6} {row['median_wall_s']:>16} {row['clips_per_s']:>8} {row['startup_s']:>12} "
              f"{row['clips_per_s_after_startup']:>22} {row['accuracy']:>9} {row['peak_rss_mb']:>14}")
    report = {"data": str(args.data), "device": args.device, "machine": machine(), "models": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.task}-{args.device.replace(':', '')}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
