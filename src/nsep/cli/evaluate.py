"""``nsep eval``: measure a model on held-out NSynth-format data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from nsep.cli import common
from nsep.cli.classify import BATCH_OPTION, DEVICE_OPTION, FP32_OPTION, MODEL_OPTION, WORKERS_OPTION
from nsep.errors import OutputExistsError, UsageError

app = typer.Typer(rich_markup_mode=common.HELP_MARKUP, help="Measure a model on held-out data.", no_args_is_help=True)

ITEMS_OPTION = typer.Option(None, "--items", help="Also write one JSON line per scored item (note, stem or mixture), "
                                                  "for `nsep eval compare`.")
OVERWRITE_OPTION = typer.Option(False, "--overwrite", "-y", help="Replace the --items and --plot files if they exist.")


def _refuse_existing(overwrite: bool, *paths: Path | None) -> None:
    """Fail before any work if an output file exists and replacing it was not asked for."""
    for path in paths:
        if path is not None and path.exists() and not overwrite:
            raise OutputExistsError(str(path))


def _write_items(result: dict, path: Path | None, overwrite: bool) -> None:
    """Take the item records out of ``result``; write them to ``path`` if one was given."""
    items = result.pop("items")
    if path is not None:
        from nsep.compare import write_items

        write_items(path, items, overwrite)


def _interval(bounds: list | None, digits: int = 4) -> str:
    """A 95 % interval as text ("" when there is none)."""
    if not bounds:
        return ""
    return "[" + ", ".join("-inf" if b is None else f"{b:.{digits}f}" for b in bounds) + "]"


def _scores_table(scores: dict) -> Table:
    calibration = f" (NLL {scores['nll']:.3f}, ECE {scores['ece']:.3f})" if scores.get("nll") is not None else ""
    interval = _interval(scores.get("accuracy_ci95"))
    interval = f" {interval}" if interval else ""
    table = Table(title=f"{scores['model']}: accuracy {scores['accuracy']:.4f}{interval} on {scores['notes']} notes{calibration}",
                  box=None)
    table.add_column("family")
    table.add_column("notes", justify="right")
    table.add_column("accuracy", justify="right")
    for family in scores["labels"]:
        acc = scores["per_family"][family]
        table.add_row(family, str(scores["support"][family]), "-" if acc is None else f"{acc:.4f}")
    return table


@app.command("classify")
def classify(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) to score on."),
    model: str = MODEL_OPTION,
    families: str = typer.Option(None, "--families", help="Score only these families, deciding among them alone."),
    split: str = typer.Option(None, "--split", help="Use only notes of this split (train, valid, test)."),
    plot: Path = typer.Option(None, "--plot", help="Write the confusion matrix as a PNG."),
    device: str = DEVICE_OPTION,
    fp32: bool = FP32_OPTION,
    batch_size: int = BATCH_OPTION,
    workers: int = WORKERS_OPTION,
    items: Path = ITEMS_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Accuracy, per-family accuracy and the confusion matrix."""
    from nsep.data.nsynth import load_bank
    from nsep.evaluate import classify_scores
    from nsep.models import registry

    _refuse_existing(overwrite, plot, items)
    predictor = registry.load(model, "classify", device, autocast=not fp32)
    examples = [e for folder in data for e in (load_bank(str(folder), split=split) if split else load_bank(str(folder)))]
    chosen = [f.strip() for f in families.split(",")] if families else None
    with common.progress(len(examples), "eval") as bar:
        task = bar.add_task("eval", total=len(examples))
        try:
            scores = classify_scores(predictor, examples, chosen, batch_size, workers, on_done=lambda: bar.advance(task))
        except ValueError as err:
            raise UsageError(str(err)) from None
    for failure in scores["failed"]:
        common.error(failure)
    _write_items(scores, items, overwrite)
    if plot:
        from nsep.audio import atomic_output
        from nsep.plot import confusion_png
        import numpy as np

        with atomic_output(plot, overwrite) as tmp:
            confusion_png(np.asarray(scores["confusion"]), scores["labels"],
                          f"{scores['model']} on {', '.join(d.name for d in data)}: {scores['accuracy']:.1%}", tmp)
    if json_:
        sys.stdout.write(json.dumps(scores, indent=2) + "\n")
    else:
        common.stdout.print(_scores_table(scores))
    raise typer.Exit(1 if scores["failed"] else 0)


def _detect_tables(scores: dict) -> list[Table]:
    """Headline, per-family and per-instrument-count tables."""
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    headline = ("per_label_accuracy", "map", "micro_f1", "macro_f1", "frame_f1")
    intervals = ", ".join(f"{name.replace('_', ' ')} {_interval(scores.get(name + '_ci95'))}" for name in ("map", "per_label_accuracy")
                          if scores.get(name + "_ci95"))
    overall = Table(title=f"{scores['model']} on {scores['mode']} mixtures, k {scores['k'][0]}..{scores['k'][-1]}",
                    caption=f"95 % intervals: {intervals}" if intervals else None, box=None)
    for name in ("mixtures", *headline):
        overall.add_column(name.replace("_", " "), justify="right", no_wrap=True)
    overall.add_row(str(scores["mixtures"]), *(cell(scores[h]) for h in headline))
    families = Table(box=None)
    columns = ("support", "threshold", "accuracy", "ap", "f1", "frame_threshold", "frame_f1")
    families.add_column("family")
    for name in columns:
        families.add_column(name.replace("_", " "), justify="right")
    for family, row in scores["per_family"].items():
        families.add_row(family, str(row["support"]), *(cell(row[c]) for c in columns[1:]))
    counts = Table(box=None)
    counts.add_column("instruments", justify="right")
    for name in ("mixtures", *headline):
        counts.add_column(name.replace("_", " "), justify="right", no_wrap=True)
    for n, row in scores["by_instruments"].items():
        counts.add_row(str(n), str(row["mixtures"]), *(cell(row[h]) for h in headline))
    return [overall, families, counts]


@app.command("detect")
def detect(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) whose notes make the mixtures."),
    model: str = MODEL_OPTION,
    mode: str = typer.Option("seed", "--mode", help="seed (notes summed at t=0) or music (notes placed in time)."),
    k: str = typer.Option("1..6", "--k", help="Instruments per mixture: a number or a range, scored separately."),
    mixtures: int = typer.Option(200, "--mixtures", min=1, help="Mixtures for each number of instruments."),
    seed: int = typer.Option(0, help="Seed of the mixtures: the same seed gives the same mixtures."),
    split: str = typer.Option(None, "--split", help="Use only notes of this split (train, valid, test)."),
    threshold: float = typer.Option(None, "--threshold", "-t", min=0.0, max=1.0,
                                    help="One threshold for every family (default: the model's)."),
    device: str = DEVICE_OPTION,
    fp32: bool = FP32_OPTION,
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Mixtures per forward pass."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Mixture-making processes."),
    items: Path = ITEMS_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Per-label accuracy, mAP, micro and macro F1 and frame-level F1, per family and by instrument count."""
    from nsep.cli.detect import parse_k
    from nsep.data.nsynth import load_bank
    from nsep.detection import Thresholds
    from nsep.evaluate_detect import mixture_scores
    from nsep.models import registry

    if mode not in ("seed", "music"):
        raise UsageError(f"--mode {mode}: choose seed or music")
    ks = parse_k(k)
    _refuse_existing(overwrite, items)
    predictor = registry.load(model, "detect", device, autocast=not fp32)
    examples = load_bank([str(d) for d in data], split=split)
    if not examples:
        raise UsageError(f"no notes in {', '.join(map(str, data))}" + (f" of split {split}" if split else ""))
    total = mixtures * (ks[1] - ks[0] + 1)
    with common.progress(total, "eval") as bar:
        task = bar.add_task("eval", total=total)
        try:
            scores = mixture_scores(predictor, examples, mode, ks, mixtures, seed, Thresholds.of(predictor.info, threshold),
                                    batch_size, workers, on_batch=lambda n: bar.advance(task, n))
        except ValueError as err:
            raise UsageError(str(err)) from None
    scores["data"] = [str(d) for d in data]
    _write_items(scores, items, overwrite)
    if json_:
        sys.stdout.write(json.dumps(scores, indent=2) + "\n")
    else:
        for table in _detect_tables(scores):
            common.stdout.print(table)


def _separate_table(scores: dict) -> Table:
    table = Table(title=f"{scores['model']}, {scores['mode']} mixtures", box=None)
    for column in ("group", "stems", "median SI-SDR", "median SI-SDRi", "95 % interval", "mean SDR", "silenced"):
        table.add_column(column, justify="left" if column == "group" else "right", no_wrap=column == "95 % interval")
    groups = [("all", scores["overall"])] + [(f"k={k}", s) for k, s in scores["by_k"].items()] + list(scores["by_family"].items())
    for name, s in groups:
        if s["stems"]:
            table.add_row(name, str(s["stems"]), f"{s['median_si_sdr']:.2f}", f"{s['median_si_sdri']:.2f}",
                          _interval(s.get("median_si_sdri_ci95"), 2), f"{s['mean_sdr']:.2f}", str(s["silenced_stems"]))
    return table


@app.command("separate")
def separate(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) whose notes make the mixtures."),
    model: str = typer.Option(None, "--model", "-m", help="Separation model name or weights file."),
    mode: str = typer.Option("music", "--mode", help="seed (notes summed at t=0) or music (notes placed in time)."),
    k: str = typer.Option("2..4", "--k", help="Families per mixture: a number or a range, scored separately."),
    mixtures: int = typer.Option(100, "--mixtures", min=1, help="Mixtures for each number of families."),
    only: str = typer.Option(None, "--only", help="Use only these notes: FAMILY or FAMILY:SOURCE, comma-separated "
                                                  "(the seed's task: bass:electronic,flute:acoustic)."),
    seed: int = typer.Option(0, help="Seed of the mixtures: the same seed gives the same mixtures."),
    split: str = typer.Option(None, "--split", help="Use only notes of this split (train, valid, test)."),
    overlap: float = typer.Option(0.25, "--overlap", min=0.0, max=0.95),
    shifts: int = typer.Option(0, "--shifts", min=0),
    gate: str = typer.Option(None, "--gate", help="Share each mixture out among some families only: `detect` "
                                                  "(those --detect-model finds) or `oracle` (those that play); `none`: "
                                                  "all (default: detect for models trained with --gated, else none)."),
    detect_model: str = typer.Option(None, "--detect-model", help="Detector for --gate detect (default: the one the "
                                                                            "model's gate was chosen with, else detect-cnn)."),
    gate_threshold: float = typer.Option(None, "--gate-threshold", min=0.0, max=1.0,
                                         help="Presence a family needs to pass --gate detect (default: the model's, as `nsep separate --gate`)."),
    device: str = DEVICE_OPTION,
    fp32: bool = FP32_OPTION,
    items: Path = ITEMS_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """SI-SDR, SI-SDR improvement and SDR, per number of families and per family."""
    from nsep.cli.detect import parse_k
    from nsep.data.nsynth import load_bank
    from nsep.evaluate_separate import scores as separation_scores
    from nsep.models import separator as separators
    from nsep.separation import Settings

    if mode not in ("seed", "music"):
        raise UsageError(f"--mode {mode}: choose seed or music")
    low, high = parse_k(k)
    _refuse_existing(overwrite, items)
    examples = load_bank([str(d) for d in data], split=split)
    if only:
        wanted = [tuple(part.strip().split(":", 1)) for part in only.split(",") if part.strip()]
        examples = [e for e in examples if any(e.instrument_family_str == w[0] and (len(w) == 1 or e.instrument_source_str == w[1])
                                               for w in wanted)]
    if not examples:
        raise UsageError(f"no notes in {', '.join(map(str, data))} for these filters")
    if gate not in (None, "none", "detect", "oracle"):
        raise UsageError(f"--gate {gate}: choose detect, oracle or none")
    separator = separators.load(model, device, autocast=not fp32)
    if gate is None and separator.gated:
        gate = "detect"
    gate = None if gate == "none" else gate
    chosen_gate = None
    if gate == "oracle":
        from nsep.evaluate_separate import oracle_gate as chosen_gate
    elif gate == "detect":
        from nsep.detection import Thresholds
        from nsep.evaluate_separate import detector_gate
        from nsep.models import registry

        detector = registry.load(detect_model or separator.gate_detector, "detect", device, autocast=separator.autocast)
        gate_threshold = separator.gate_threshold if gate_threshold is None else gate_threshold
        chosen_gate = detector_gate(detector, Thresholds.of(detector.info, gate_threshold))
    separator.gate(set() if gate else None)  # refuses models that cannot be gated, before any work
    ks = list(range(low, high + 1))
    with common.progress(mixtures * len(ks), "eval") as bar:
        task = bar.add_task("eval", total=mixtures * len(ks))
        result = separation_scores(separator, examples, mode, ks, mixtures, seed, Settings(overlap=overlap, shifts=shifts),
                                   on_item=lambda: bar.advance(task), gate=chosen_gate)
    result["data"] = [str(d) for d in data]
    result["gate"] = gate if gate != "detect" else f"detect:{detector.info.name}"
    result["gate_threshold"] = gate_threshold
    result["only"] = only
    _write_items(result, items, overwrite)
    if json_:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        common.stdout.print(_separate_table(result))


def _compare_table(result: dict, a: Path, b: Path) -> Table:
    counts = {"classify": f"{result.get('only_a_right', 0)} notes only A gets right, {result.get('only_b_right', 0)} only B",
              "separate": f"B better on {result.get('b_better', 0)} stems, A on {result.get('a_better', 0)}",
              "detect": f"families: {', '.join(result.get('families', []))}"}[result["task"]]
    table = Table(title=f"A {result['a']} ({a.name}) and B {result['b']} ({b.name}): {result['items']} items in "
                        f"{result['groups']} groups", caption=counts, box=None)
    for column in ("metric", "A", "B", "B - A", "95 % interval"):
        table.add_column(column, justify="left" if column == "metric" else "right", no_wrap=True)
    for row in result["metrics"]:
        table.add_row(row["metric"].replace("_", " "), f"{row['a']:.4f}", f"{row['b']:.4f}", f"{row['difference']:+.4f}",
                      _interval(row["difference_ci95"]))
    return table


@app.command("compare")
def compare(
    a: Path = typer.Argument(..., metavar="A", help="Items of model A (`nsep eval ... --items A.jsonl`).", show_default=False),
    b: Path = typer.Argument(..., metavar="B", help="Items of model B, scored on the same data.", show_default=False),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Two models on the same items: each headline, B minus A, and a paired 95 % interval of the difference."""
    from nsep.compare import compare as paired, read_items

    try:
        result = paired(read_items(a), read_items(b))
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from None
    if json_:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        common.stdout.print(_compare_table(result, a, b))
