"""Make thinned views of NSynth-format banks: a random share of each bank's notes, by split.

For training on a machine whose memory cannot hold every note (training decodes all chosen notes
into RAM): each output bank holds a filtered examples.json and links to the source's audio folder.

    python scripts/thin_banks.py datasets/six/* -o datasets/thin --train 0.25 --valid 0.5 --keep ToneJS
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("banks", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--train", type=float, default=0.25, help="share of train notes kept")
    parser.add_argument("--valid", type=float, default=0.5, help="share of valid notes kept")
    parser.add_argument("--keep", nargs="*", default=[], help="banks (folder names) kept whole")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for number, bank in enumerate(args.banks):
        examples = json.loads((bank / "examples.json").read_text())
        rng = np.random.default_rng([args.seed, number])
        share = {"train": args.train, "valid": args.valid}
        kept = {note: record for note, record in examples.items()
                if bank.name in args.keep or rng.random() < share.get(record.get("split"), 1.0)}
        out = args.output / bank.name
        out.mkdir(parents=True, exist_ok=True)
        (out / "examples.json").write_text(json.dumps(kept))
        link = out / "audio"
        if not link.exists():
            link.symlink_to((bank / "audio").resolve())
        print(f"{bank.name}: {len(kept)} of {len(examples)} notes")


if __name__ == "__main__":
    main()
