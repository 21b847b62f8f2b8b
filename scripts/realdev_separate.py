"""Score separation models on the real recordings of realdev/mixes that have stems (evaluation only).

Items: the Bach10 excerpts (string = violin; reed = clarinet + tenor sax + bassoon) and the MUSDB18
preview (drums, bass, vocal, other). Each mixture is separated at its own rate through nsep's
engine; a family's estimate is the model's stem of that family, ``other`` is the mixture minus the
estimates of the item's named families. Reported per stem: SI-SDR and SI-SDRi (over the mixture).

With ``--gate detect`` each mixture is shared out among the families the model's gate detector
(``--detect-model``, else the one the model names, else detect-cnn) finds in it (as
``nsep separate --gate``); with ``--gate named``, among the item's named families (as ``nsep separate
--families``).

Usage: python scripts/realdev_separate.py --models separate-unet-bilstm ... [--gate detect|named] [--realdev DIR] [--json OUT.json]
Prints a Markdown table for docs/.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from nsep import audio, metrics, separation
from nsep.highband import HighBandSplitter
from nsep.models import separator as separators

REALDEV = Path(__file__).resolve().parents[2] / "shared" / "realdev"
FAMILY = {"vocals": "vocal"}


def references(item: dict, realdev: Path) -> dict[str, torch.Tensor]:
    refs: dict[str, torch.Tensor] = defaultdict(lambda: 0)
    for source in item["sources"]:
        family = FAMILY.get(source["family"], source["family"])
        refs[family] = refs[family] + audio.load(str(realdev / source["path"]), allow_silent=True).samples
    return dict(refs)


def gates(gate: str | None, items: list[dict], realdev: Path, sep: separators.Separator,
          detector_name: str | None = None) -> dict[str, set[str] | None]:
    """Per item, the families its mixture is shared out among: None (all), the detector's (at ``sep``'s
    gate threshold and precision, as ``nsep separate --gate``), or its named ones."""
    if gate == "named":
        return {i["name"]: {FAMILY.get(s["family"], s["family"]) for s in i["sources"]} - {"other"} for i in items}
    if gate != "detect":
        return {i["name"]: None for i in items}
    from nsep import detection
    from nsep.models import registry

    detector = registry.load(detector_name or sep.gate_detector, "detect", "cpu", autocast=sep.autocast)
    thresholds = detection.Thresholds.of(detector.info, sep.gate_threshold)
    results = detection.run(detector, [str(realdev / i["mixture"]) for i in items], thresholds, workers=0)
    return {i["name"]: set(thresholds.present(detector.info.labels, r.present)) for i, r in zip(items, results)}


def score(model: str, items: list[dict], realdev: Path, gate: str | None = None, detector: str | None = None,
          highs: str = "other") -> dict:
    sep = separators.load(model, "cpu")
    allowed = gates(gate, items, realdev, sep, detector)
    rows = {}
    for item in items:
        clip = audio.load(str(realdev / item["mixture"]))
        mix, rate = clip.samples, clip.sample_rate
        sep.gate(allowed[item["name"]])
        stems = separation.separate(sep, audio.resample(mix, rate, sep.sample_rate))
        stems = audio.resample(stems.flatten(0, 1), sep.sample_rate, rate).view(len(sep.sources), mix.shape[0], -1)
        stems = stems[..., : mix.shape[-1]]
        if highs == "follow" and rate > sep.sample_rate:  # as `nsep separate --highs follow` does, in one block
            stems = HighBandSplitter(rate, sep.sample_rate).apply(stems.contiguous(), mix)
        refs = references(item, realdev)
        named = {f: stems[sep.sources.index(f)] for f in refs if f != "other" and f in sep.sources}
        if "other" in refs:
            named["other"] = mix - sum(named.values())
        row = {}
        for family, ref in refs.items():
            if family not in named:
                continue
            est, truth = named[family].flatten().numpy(), ref[..., : mix.shape[-1]].flatten().numpy()
            si = float(metrics.si_sdr(est, truth))
            base = float(metrics.si_sdr(mix.flatten().numpy(), truth))
            row[family] = {"si_sdr": round(si, 2), "si_sdri": round(si - base, 2)}
        rows[item["name"]] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["separate-unet-bilstm"])
    parser.add_argument("--realdev", type=Path, default=REALDEV)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--gate", choices=["detect", "named"])
    parser.add_argument("--detect-model", help="detector for --gate detect (default: the model's own gate detector)")
    parser.add_argument("--highs", choices=["other", "follow"], default="other",
                        help="the band above the model's: left out of the stems, or shared out (`nsep separate --highs`)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    items = [i for i in json.loads((args.realdev / "mixes" / "mixes.json").read_text()) if i["sources"]]
    results = {m: score(m, items, args.realdev, args.gate, args.detect_model, args.highs) for m in args.models}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print("| item | stem | " + " | ".join(f"{m} SI-SDR (SI-SDRi)" for m in args.models) + " |")
    print("|---|---|" + "---|" * len(args.models))
    for item in items:
        for family in results[args.models[0]][item["name"]]:
            cells = [f"{results[m][item['name']][family]['si_sdr']:.1f} ({results[m][item['name']][family]['si_sdri']:+.1f})"
                     for m in args.models]
            print(f"| {item['name']} | {family} | " + " | ".join(cells) + " |")
    for m in args.models:
        values = [v["si_sdri"] for row in results[m].values() for v in row.values()]
        print(f"\n{m}: median SI-SDRi over {len(values)} stems {np.median(values):+.2f} dB", end="")
    print()


if __name__ == "__main__":
    main()
