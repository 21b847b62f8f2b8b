"""Instrument-disjoint train/valid splits, stratified by family.

Whole instrument groups are assigned, never single notes. A group is every instrument of one
family that shares a General-MIDI program (the ``program`` field of nsep's banks), because fonts
reuse each other's samples (MuseScore General contains FluidR3's): FluidR3's piano in train and
MuseScore's piano in valid would leak. Banks without a ``program`` field (NSynth's own) group by
``instrument_str``. Every family with at least two groups gets at least one in each split.
"""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np

TRAIN, VALID = "train", "valid"


def _group(record: dict) -> tuple:
    family = record["instrument_family_str"]
    if record.get("program") is not None:
        return family, "program", int(record["program"])
    return family, "instrument", record["instrument_str"]


def assign(examples: dict[str, dict], valid_fraction: float, seed: int, split: str | None = None) -> dict[tuple, str]:
    """Set each record's ``split``: all to ``split`` if given, else train/valid by instrument group."""
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid fraction must be in [0, 1), got {valid_fraction}")
    groups: dict[str, set[tuple]] = defaultdict(set)
    for record in examples.values():
        groups[record["instrument_family_str"]].add(_group(record))
    chosen: dict[tuple, str] = {}
    for family, members in sorted(groups.items()):
        ordered = sorted(members, key=repr)
        rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
        order = rng.permutation(len(ordered))
        n_valid = round(valid_fraction * len(ordered))
        if valid_fraction > 0 and len(ordered) >= 2:
            n_valid = min(max(n_valid, 1), len(ordered) - 1)
        for rank, index in enumerate(order):
            chosen[ordered[index]] = split or (VALID if rank < n_valid else TRAIN)
    for record in examples.values():
        record["split"] = chosen[_group(record)]
    return chosen
