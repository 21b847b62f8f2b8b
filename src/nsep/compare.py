"""Paired comparison of two models scored on the same items (``nsep eval ... --items``, ``nsep eval compare``).

Scoring two models on the same notes or mixtures and comparing their headlines wastes the pairing:
most of the spread in a headline comes from which items were drawn, and both models share it. Here
the difference (B minus A) gets a 95 % bootstrap interval in which each draw takes the same whole
groups (instruments, mixtures) for both models, so only their disagreement is left to vary.

An items file is JSON Lines, one record per scored item: ``task``, ``model``, ``key`` (the same item
under any model: a note's real path, or a mixture's number and a checksum of its samples, so mixtures
drawn from other data or another seed never pair), ``group`` (what the bootstrap draws whole), and
the item's scores.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from nsep import metrics
from nsep.audio import atomic_output

TASKS = ("classify", "detect", "separate")


def fingerprint(samples: np.ndarray) -> str:
    """A short checksum of a mixture's samples: equal for the same mixture, whatever scored it."""
    return f"{zlib.crc32(np.ascontiguousarray(samples, dtype=np.float32).tobytes()):08x}"


def write_items(path: str | Path, items: Iterable[dict], overwrite: bool = False) -> None:
    """Write item records as JSON Lines, atomically."""
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            for item in items:
                out.write(json.dumps(item, separators=(",", ":")) + "\n")


def read_items(path: str | Path) -> list[dict]:
    """Item records from ``path``; ValueError naming the file and line for anything else."""
    items = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(item, dict) or item.get("task") not in TASKS or "key" not in item or "group" not in item:
                raise ValueError(f"{path}:{number}: not an item record of `nsep eval --items`")
            items.append(item)
    if not items:
        raise ValueError(f"{path}: no items")
    return items


def _paired(a: list[dict], b: list[dict]) -> tuple[list[dict], list[dict]]:
    """Both lists in one key order; ValueError unless they hold the same task and the same items."""
    tasks = {item["task"] for item in a} | {item["task"] for item in b}
    if len(tasks) != 1:
        raise ValueError(f"the files hold different tasks ({', '.join(sorted(tasks))})")
    by_key_a, by_key_b = {i["key"]: i for i in a}, {i["key"]: i for i in b}
    if len(by_key_a) != len(a) or len(by_key_b) != len(b):
        raise ValueError("an items file repeats a key")
    only_a, only_b = by_key_a.keys() - by_key_b.keys(), by_key_b.keys() - by_key_a.keys()
    if only_a or only_b:
        raise ValueError(f"the files scored different items ({len(only_a)} only in A, {len(only_b)} only in B): "
                         "score both models on the same data, split, mode, k, mixtures and seed")
    keys = sorted(by_key_a)
    return [by_key_a[k] for k in keys], [by_key_b[k] for k in keys]


Statistic = Callable[[np.ndarray], float]  # indices of the items drawn -> a headline


def _row(name: str, of_a: Statistic, of_b: Statistic, groups: np.ndarray) -> dict:
    everything = np.arange(len(groups))
    value_a, value_b = of_a(everything), of_b(everything)
    interval = metrics.bootstrap_interval(lambda drawn: of_b(drawn) - of_a(drawn), groups)
    return {"metric": name, "a": round(value_a, 4), "b": round(value_b, 4), "difference": round(value_b - value_a, 4),
            "difference_ci95": interval}


def _column(items: list[dict], name: str) -> np.ndarray:
    """One score of every item; null (a silenced stem's SI-SDR) is -inf."""
    return np.asarray([-np.inf if item[name] is None else item[name] for item in items], dtype=np.float64)


def _classify(a: list[dict], b: list[dict], groups: np.ndarray) -> tuple[list[dict], dict]:
    right_a, right_b = _column(a, "correct").astype(bool), _column(b, "correct").astype(bool)
    counts = {"items": len(a), "only_a_right": int((right_a & ~right_b).sum()), "only_b_right": int((right_b & ~right_a).sum())}
    return [_row("accuracy", lambda d: float(right_a[d].mean()), lambda d: float(right_b[d].mean()), groups)], counts


def _separate(a: list[dict], b: list[dict], groups: np.ndarray) -> tuple[list[dict], dict]:
    improvement_a, improvement_b = _column(a, "si_sdri"), _column(b, "si_sdri")
    sdr_a, sdr_b = _column(a, "sdr"), _column(b, "sdr")
    counts = {"items": len(a), "b_better": int((improvement_b > improvement_a).sum()),
              "a_better": int((improvement_a > improvement_b).sum())}
    return [_row("median_si_sdri", lambda d: float(np.median(improvement_a[d])), lambda d: float(np.median(improvement_b[d])), groups),
            _row("mean_sdr", lambda d: float(sdr_a[d].mean()), lambda d: float(sdr_b[d].mean()), groups)], counts


def _detect(a: list[dict], b: list[dict], groups: np.ndarray) -> tuple[list[dict], dict]:
    families = [f for f in a[0]["truth"] if f in b[0]["truth"] and any(item["truth"][f] for item in a)]
    if not families:
        raise ValueError("the two detectors share no family that plays in these mixtures")

    def table(items: list[dict], name: str) -> np.ndarray:
        return np.asarray([[item[name][f] for f in families] for item in items], dtype=np.float64)

    truth = table(a, "truth").astype(bool)
    if not np.array_equal(truth, table(b, "truth").astype(bool)):
        raise ValueError("the files disagree on which families play in the same mixtures")
    probs_a, probs_b = table(a, "probs"), table(b, "probs")
    right_a, right_b = table(a, "decided").astype(bool) == truth, table(b, "decided").astype(bool) == truth
    counts = {"items": len(a), "families": families}
    return [_row("map", lambda d: metrics.mean_average_precision(probs_a[d], truth[d]),
                 lambda d: metrics.mean_average_precision(probs_b[d], truth[d]), groups),
            _row("per_label_accuracy", lambda d: float(right_a[d].mean()), lambda d: float(right_b[d].mean()), groups)], counts


def compare(a: list[dict], b: list[dict]) -> dict:
    """Headline metrics of A and B on their shared items, B minus A with a paired 95 % bootstrap
    interval over whole groups, and counts of the items where they disagree."""
    a, b = _paired(a, b)
    task = a[0]["task"]
    groups = np.asarray([item["group"] for item in a])
    rows, counts = {"classify": _classify, "separate": _separate, "detect": _detect}[task](a, b, groups)
    return {"task": task, "a": a[0].get("model"), "b": b[0].get("model"), "groups": int(len(np.unique(groups))),
            **counts, "metrics": rows}
