"""Write a copy of a mask separator's weights with another mask temperature (``mask_temperature`` in its config).

Usage: python scripts/set_mask_temperature.py weights/separate-unet-bilstm.pt 1.5 -o OUT.pt
The temperature divides the mask logits before the softmax (`nsep.models.masking`); the weights are
unchanged. Choose it on validation (`nsep eval separate --split valid`), never on held-out data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsep.models.base import read_checkpoint, save_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("temperature", type=float)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    info, state = read_checkpoint(args.weights)
    if info.task != "separate" or info.architecture not in ("unet", "unet-bilstm", "bandsplit"):
        raise SystemExit(f"{args.weights}: not a mask separator ({info.task} {info.architecture})")
    if args.temperature <= 0:
        raise SystemExit("the temperature must be positive")
    info.config = {**info.config, "mask_temperature": args.temperature}
    save_state(args.out, state, info)
    print(f"{args.out}: mask temperature {args.temperature}")


if __name__ == "__main__":
    main()
