"""Benchmark the training-data path: notes rendered per second per core, mixtures per second.

Run: ``python bench/bench_data.py [--notes 1500]``. Renders a fixed sample of programs (every
melodic family, five velocities) from each installed training font, in one process, at ``--oversample``
1 and 2; per-core speed is notes per CPU-second of that process, so other load on the machine
changes it little. Then one render with ``--workers`` processes (wall clock), and the mixture
sampler in both modes, with and without its note cache. Prints a table and writes
``bench/results/data.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nsep.data import mixtures
from nsep.data.nsynth import load_bank
from nsep.data.plan import RenderConfig
from nsep.data.render import render
from nsep.taxonomy import FAMILIES

RESULTS = Path(__file__).parent / "results" / "data.json"
FONTS = [Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
         Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2")]
# one or two programs of every melodic family
PROGRAMS = (0, 4, 11, 19, 24, 30, 33, 38, 40, 48, 52, 56, 62, 65, 71, 73, 81)
MIXTURES = 300


def _pitches(notes: int) -> tuple[int, int]:
    """A pitch range centred on middle C giving about ``notes`` notes over the sample of programs."""
    per_program = max(1, notes // len(PROGRAMS) // 5)
    low = max(21, 60 - per_program // 2)
    return low, min(108, low + per_program - 1)


def bench_render(font: Path, out: Path, config: RenderConfig, workers: int) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    summary = render([font], out, config, workers=workers)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"font": font.name, "oversample": config.oversample, "workers": workers, "notes": summary.rendered,
            "wall_s": round(wall, 2), "notes_per_s": round(summary.rendered / wall, 1),
            "notes_per_cpu_s": round(summary.rendered / cpu, 1) if workers == 1 else None}


def bench_mixtures(bank: Path) -> list[dict]:
    notes = load_bank(bank)
    rows = []
    for mode in mixtures.MODES:
        for cache in (False, True):
            data = mixtures.dataset(notes, mode, MIXTURES, seed=0, k=(1, 4), cache=cache)
            if cache:
                [data[i] for i in range(len(data))]  # fill the cache first
            cpu, wall = time.process_time(), time.perf_counter()
            [data[i] for i in range(len(data))]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rows.append({"mode": mode, "cache": cache, "mixtures": MIXTURES, "mixtures_per_s": round(MIXTURES / wall, 1),
                         "mixtures_per_cpu_s": round(MIXTURES / cpu, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1500, help="About this many notes per font and setting.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    fonts = [f for f in FONTS if f.is_file()]
    if not fonts:
        sys.exit("no training SoundFont installed (apt-get install fluid-soundfont-gm)")
    base = RenderConfig(programs=PROGRAMS, families=tuple(f for f in FAMILIES if f != "drums"),
                        pitches=_pitches(args.notes), family_ranges=False,
                        synthetic_fonts=("OPL-3_FM_128M.sf2",))
    renders = []
    with tempfile.TemporaryDirectory(prefix="nsep-bench-") as tmp:
        for font in fonts:
            for oversample in (1, 2):
                out = Path(tmp) / f"{font.stem}-{oversample}"
                renders.append(bench_render(font, out, replace(base, oversample=oversample), 1))
        parallel = Path(tmp) / "parallel"
        renders.append(bench_render(fonts[0], parallel, base, args.workers))
        mixes = bench_mixtures(parallel)
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "renders": renders,
        "mixtures": mixes,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    console = Console()
    for title, rows in (("render", renders), ("mixtures", mixes)):
        table = Table(title=title, box=None)
        for column in rows[0]:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(table)
    console.print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
