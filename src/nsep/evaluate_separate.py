"""Measure a separator on mixtures of held-out notes: SI-SDR, its improvement over the mix, and SDR.

Each mixture (from the sampler, at 16 kHz, 4 s) goes through the same engine as ``nsep separate``
(resampled to the model's rate and back). References are the mixture's family stems; families the
model has no stem for are summed into its ``other`` stem (or left out if it has none). Scores are
per playing stem: SI-SDR (Le Roux et al.), SI-SDRi (SI-SDR of the estimate minus that of the mix
itself), and SDR as the MDX challenge computes it (no scaling or framing). The median SI-SDRi comes
with a 95 % bootstrap interval that draws whole mixtures. A playing family whose
stem the model leaves silent (as presence gating does when the detector misses it) has SI-SDR
-inf: it counts in the medians, is left out of the mean SI-SDRi and is counted as ``silenced_stems``.
The result's ``items`` hold one record per playing stem (:mod:`nsep.compare`; -inf written as null).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from nsep import audio, metrics, separation
from nsep.compare import fingerprint
from nsep.data import mixtures
from nsep.data.nsynth import Example
from nsep.detection import Thresholds
from nsep.evaluate_detect import CLIP_SAMPLES, SAMPLE_RATE, run_seed
from nsep.taxonomy import FAMILIES


def references(stems: torch.Tensor, sources: list[str]) -> torch.Tensor:
    """Mixture stems ``[len(FAMILIES), T]`` -> one reference per model source ``[S, T]``."""
    rows = []
    for source in sources:
        if source in FAMILIES:
            rows.append(stems[FAMILIES.index(source)])
        elif source == "other":
            rows.append(stems[[i for i, f in enumerate(FAMILIES) if f not in sources]].sum(0))
        else:
            rows.append(torch.zeros_like(stems[0]))
    return torch.stack(rows)


def estimate(separator: separation.Separator, mix: torch.Tensor, settings: separation.Settings) -> torch.Tensor:
    """Stems ``[S, T]`` of a mono 16 kHz mix ``[T]``, through the engine at the model's rate."""
    wave = audio.resample(mix[None], SAMPLE_RATE, separator.sample_rate)
    stems = separation.separate(separator, wave, settings)[:, 0]
    return audio.resample(stems, separator.sample_rate, SAMPLE_RATE)[..., : mix.shape[-1]]


Gate = Callable[[torch.Tensor, mixtures.Mixture], "set[str]"]


def oracle_gate(mix: torch.Tensor, item: mixtures.Mixture) -> set[str]:
    """The families that really play in the mixture (an upper bound for presence gating)."""
    return {FAMILIES[i] for i in np.flatnonzero(item.presence.numpy() > 0)}


def detector_gate(predictor, thresholds: Thresholds) -> Gate:
    """The families a detector finds in the mixture (its clip-level presence above its thresholds)."""

    def gate(mix: torch.Tensor, item: mixtures.Mixture) -> set[str]:
        return set(thresholds.present(predictor.info.labels, predictor.predict(mix[None])[0]))

    return gate


def _summary(rows: list[dict]) -> dict:
    if not rows:
        return {"stems": 0}
    pick = lambda key: np.array([r[key] for r in rows])  # noqa: E731
    silenced = ~np.isfinite(pick("si_sdr"))  # playing stems the model gave nothing (SI-SDR -inf)
    improvement = pick("si_sdri")
    return {
        "stems": len(rows),
        "median_si_sdr": round(float(np.median(pick("si_sdr"))), 3),
        "median_si_sdri": round(float(np.median(improvement)), 3),
        "median_si_sdri_ci95": metrics.bootstrap_interval(lambda drawn: np.median(improvement[drawn]), pick("mixture")),
        "mean_si_sdri": round(float(np.mean(improvement[~silenced])), 3) if (~silenced).any() else None,
        "mean_sdr": round(float(np.mean(pick("sdr"))), 3),
        "silenced_stems": int(silenced.sum()),
    }


def scores(separator: separation.Separator, examples: list[Example], mode: str, ks: list[int], count: int, seed: int,
           settings: separation.Settings = separation.Settings(), on_item: Callable[[], None] | None = None,
           gate: Gate | None = None) -> dict:
    """Scores by number of families, by family and over all, on ``count`` mixtures per k; with ``gate``,
    each mixture is shared out among the families the gate names only."""
    by_k: dict[int, list[dict]] = {}
    by_family: dict[str, list[dict]] = defaultdict(list)
    for k in ks:
        data = mixtures.dataset(examples, mode, count, run_seed(seed, "separate", mode, k), (k, k), SAMPLE_RATE, CLIP_SAMPLES)
        rows = []
        for n, item in enumerate(data):
            mix = item.mix[0]
            mixture = f"{mode}/{k}/{n}/{fingerprint(mix.numpy())}"
            truth = references(item.stems, separator.sources)
            if gate is not None:
                separator.gate(gate(mix, item))
            guess = estimate(separator, mix, settings)
            playing = truth.square().sum(-1) > 1e-8 * mix.square().sum()
            si = metrics.si_sdr(guess.numpy(), truth.numpy())
            base = metrics.si_sdr(np.broadcast_to(mix.numpy(), truth.shape), truth.numpy())
            sdr = metrics.sdr(guess.numpy(), truth.numpy())
            for i in np.flatnonzero(playing.numpy()):
                row = {"family": separator.sources[i], "si_sdr": float(si[i]), "si_sdri": float(si[i] - base[i]),
                       "sdr": float(sdr[i]), "mixture": mixture}
                rows.append(row)
                by_family[row["family"]].append(row)
            if on_item:
                on_item()
        by_k[k] = rows
    separator.gate(None)
    every = [r for rows in by_k.values() for r in rows]
    finite = lambda value: value if np.isfinite(value) else None  # noqa: E731
    items = [{"task": "separate", "model": separator.name, "key": f"{r['mixture']}/{r['family']}", "group": r["mixture"],
              "family": r["family"], "si_sdr": finite(r["si_sdr"]), "si_sdri": finite(r["si_sdri"]), "sdr": r["sdr"]}
             for r in every]
    return {
        "model": separator.name, "mode": mode, "mixtures_per_k": count, "seed": seed,
        "settings": {"segment": settings.segment, "overlap": settings.overlap, "shifts": settings.shifts},
        "overall": _summary(every),
        "by_k": {str(k): _summary(rows) for k, rows in by_k.items()},
        "by_family": {f: _summary(by_family[f]) for f in separator.sources if by_family.get(f)},
        "items": items,
    }
