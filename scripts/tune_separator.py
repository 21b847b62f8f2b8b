"""Write a copy of a mask separator's weights with its inference settings changed; the weights stay as they are.

Usage: python scripts/tune_separator.py weights/separate-unet-bilstm.pt [--mask-temperature 1.5]
           [--gate-threshold 0.1] [--gate-detector detect-cnn-gate] -o OUT.pt
``--mask-temperature`` divides the mask logits before the softmax (`nsep.models.masking`);
``--gate-threshold`` is the presence a family needs to pass the model's gate (`nsep separate --gate`,
recorded as ``training.gate_threshold``); ``--gate-detector`` names the detector that gate runs
(``training.gate_detector``). Choose them on validation (`nsep eval separate --split
valid`), never on held-out data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsep.models.base import read_checkpoint, save_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--mask-temperature", type=float)
    parser.add_argument("--gate-threshold", type=float)
    parser.add_argument("--gate-detector")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    info, state = read_checkpoint(args.weights)
    if info.task != "separate" or info.architecture not in ("unet", "unet-bilstm", "bandsplit"):
        raise SystemExit(f"{args.weights}: not a mask separator ({info.task} {info.architecture})")
    if args.mask_temperature is not None:
        if args.mask_temperature <= 0:
            raise SystemExit("the mask temperature must be positive")
        info.config = {**info.config, "mask_temperature": args.mask_temperature}
    if args.gate_threshold is not None:
        if not 0 <= args.gate_threshold <= 1:
            raise SystemExit("the gate threshold is a presence between 0 and 1")
        info.training = {**info.training, "gate_threshold": args.gate_threshold}
    if args.gate_detector is not None:
        info.training = {**info.training, "gate_detector": args.gate_detector}
    save_state(args.out, state, info)
    print(f"{args.out}: mask temperature {info.config.get('mask_temperature', 1.0)}, "
          f"gate threshold {info.training.get('gate_threshold', 'the default')}, "
          f"gate detector {info.training.get('gate_detector', 'the default')}")


if __name__ == "__main__":
    main()
