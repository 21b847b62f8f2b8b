"""``nsep models``: list, inspect, download, verify and locate model weights; combine classifiers; average
fine-tunes; clear the cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from nsep import repo
from nsep.cli import common
from nsep.errors import OutputExistsError, UsageError

app = typer.Typer(
    rich_markup_mode=common.HELP_MARKUP,
    help="Model weights: list, inspect, download, verify, locate; clear the download cache.",
    no_args_is_help=True,
)

REPO_OPTION = typer.Option(
    None, "--repo", metavar="DIR|URL",
    help="A folder of weights with its own manifest.json, or a mirror URL [env: NSEP_MODEL_REPO].",
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _use(repo_location: str | None) -> None:
    if repo_location:
        repo.set_repo(repo_location)


def _entries(names: list[str] | None) -> list[repo.ModelEntry]:
    return [repo.entry(name) for name in names] if names else repo.manifest()


def _size(model: repo.ModelEntry) -> int | None:
    """Bytes of all its files, from the manifest or else from local copies; None if unknown."""
    total = 0
    for part in model.weight_files():
        found = repo.copies(part)
        size = part.size if part.size is not None else (found[0][1].stat().st_size if found else None)
        if size is None:
            return None
        total += size
    return total


# shown ahead of their siblings: a separator's gain over the mix says more than its raw SI-SDR
_PREFERRED = ("si_sdri",)


def _headline(metrics: dict[str, Any], prefix: str = "") -> str:
    """The first numeric metric (a preferred one first) as ``name value``, looking into nested groups."""
    ordered = sorted(metrics.items(), key=lambda item: item[0] not in _PREFERRED)
    for key, value in ordered:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{prefix}{key} {value:g}"
        if isinstance(value, dict) and (inner := _headline(value, f"{prefix}{key}.")):
            return inner
    return ""


def _columns_table(columns: tuple[str, ...], right: tuple[str, ...] = ()) -> Table:
    table = Table(box=None)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def _megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _list_table(records: list[dict[str, Any]]) -> Table:
    table = _columns_table(("name", "task", "default", "architecture", "size", "where", "metric"), right=("size",))
    for r in records:
        table.add_row(r["name"], r["task"], "yes" if r["default"] else "", r["architecture"], _megabytes(r["size"]),
                      r["where"], r["metric"])
    return table


def _defaults() -> set[str]:
    """The model each task runs when no --model is given."""
    from nsep.models import registry
    from nsep.models import separator

    return {*registry.DEFAULT_MODELS.values(), separator.DEFAULT}


@app.command("list")
def list_(repo_location: str = REPO_OPTION, json_: bool = JSON_OPTION) -> None:
    """List known models: task, whether the task runs it by default, architecture, size, where the
    weights are, headline metric."""
    _use(repo_location)
    reporter = common.Reporter("json" if json_ else "table", _list_table)
    defaults = _defaults()
    for model in repo.manifest():
        reporter.add({"name": model.name, "task": model.task, "default": model.name in defaults, "architecture": model.architecture,
                      "size": _size(model), "where": repo.location(model), "metric": _headline(model.metrics)})
    raise typer.Exit(reporter.finish())


def _files(model: repo.ModelEntry) -> list[dict[str, Any]]:
    files = []
    for part in model.weight_files():
        sha256, size = repo.expected(part)
        found = repo.copies(part)
        files.append({"file": part.file, "expected_sha256": sha256, "expected_size": size,
                      "where": found[0][0] if found else "missing", "path": str(found[0][1]) if found else None})
    return files


@app.command("info")
def info(name: str = typer.Argument(..., help="Model name."), repo_location: str = REPO_OPTION,
         json_: bool = JSON_OPTION) -> None:
    """Show everything the manifest says about a model, and where its files are."""
    _use(repo_location)
    model = repo.entry(name)
    record = {**model.to_dict(), "files": _files(model)}
    if json_:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return
    table = _columns_table(("field", "value"))
    for key, value in record.items():
        if key == "files":
            value = "\n".join(f"{f['file']}  {f['where']}  sha256 {f['expected_sha256'][:16]}  {f['path'] or ''}" for f in value)
        if value is not None and key != "parts":  # "files" shows the parts with where they are
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    common.stdout.print(table)


def _paths_table(records: list[dict[str, Any]]) -> Table:
    table = _columns_table(("name", "path"))
    for r in records:
        table.add_row(r["name"], "\n".join(r["paths"]))
    return table


@app.command("download")
def download(names: list[str] = typer.Argument(..., help="Model names.", show_default=False),
             repo_location: str = REPO_OPTION, json_: bool = JSON_OPTION) -> None:
    """Download and check models' weights now (they are otherwise fetched on first use)."""
    _use(repo_location)
    models = _entries(names)
    reporter = common.Reporter("json" if json_ else "table", _paths_table)
    for model in models:
        def work(model: repo.ModelEntry = model) -> None:
            paths = repo.fetch_all(model, progress=not common.settings.quiet)
            reporter.add({"name": model.name, "paths": [str(p) for p in paths]})

        common.guarded(reporter, model.name, work)
    raise typer.Exit(reporter.finish())


def _verify_table(records: list[dict[str, Any]]) -> Table:
    table = _columns_table(("name", "file", "where", "status", "path"))
    for r in records:
        table.add_row(r["name"], r["file"], r["where"], r["status"], r["path"] or "")
    return table


@app.command("verify")
def verify(names: list[str] = typer.Argument(None, help="Model names (default: all).", show_default=False),
           repo_location: str = REPO_OPTION, json_: bool = JSON_OPTION) -> None:
    """Re-hash bundled, cached and repo copies of weights; exit 1 if any does not match."""
    _use(repo_location)
    reporter = common.Reporter("json" if json_ else "table", _verify_table)
    for model in _entries(names):
        for part in model.weight_files():
            found = repo.copies(part)
            if not found:
                reporter.add({"name": model.name, "file": part.file, "where": "missing", "status": "missing", "path": None})
            for where, path in found:
                status = "ok"
                try:
                    repo.check(part, path, cached=False)
                except repo.IntegrityError as err:
                    status = "MISMATCH"
                    reporter.fail(f"model {model.name}: {err}")
                reporter.add({"name": model.name, "file": part.file, "where": where, "status": status, "path": str(path)})
    raise typer.Exit(reporter.finish())


@app.command("path")
def path(name: str = typer.Argument(..., help="Model name."), repo_location: str = REPO_OPTION,
         json_: bool = JSON_OPTION) -> None:
    """Print where a model's weights are (one line per file); exit 1 if not downloaded."""
    _use(repo_location)
    model = repo.entry(name)
    records = _files(model)
    missing = [r["file"] for r in records if r["path"] is None]
    if missing:
        common.error(f"model {name}: {', '.join(missing)} not here (run `nsep models download {name}`)")
        raise typer.Exit(1)
    if json_:
        sys.stdout.write(json.dumps({"name": name, "paths": [r["path"] for r in records]}, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"{r['path']}\n" for r in records))


@app.command("combine")
def combine(members: list[str] = typer.Argument(..., help="Classifier names or weights files (two or more, or one with --detector; an ensemble contributes its members).",
                                                show_default=False),
            out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt)."),
            detector: str = typer.Option(None, "--detector", help="Also weigh each family by this detector's presence of it (name or file): a product of experts."),
            detector_weight: float = typer.Option(1.0, "--detector-weight", min=0.0, help="Exponent of the detector's presence in the product."),
            detector_seconds: float = typer.Option(None, "--detector-seconds", min=0.1,
                                                   help="The detector judges only the first seconds of each window (faster; default: all of it)."),
            temperature: float = typer.Option(1.0, "--temperature", min=0.05,
                                              help="Divide the combined log-probabilities by this (above 1 softens overconfident "
                                                   "products; choose it on validation by `nsep eval classify`'s NLL)."),
            overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace OUT if it exists."),
            json_: bool = JSON_OPTION) -> None:
    """Combine trained classifiers into one model that averages their probabilities (an ensemble),
    optionally weighed by a detector's presence of each family."""
    from nsep.models import registry
    from nsep.models.ensemble import combine as write_ensemble

    if out.exists() and not overwrite:
        raise OutputExistsError(str(out))
    paths = [registry.locate(member, "classify")[0] for member in members]
    judge = registry.locate(detector, "detect")[0] if detector else None
    if detector_seconds is not None and not judge:
        raise UsageError("--detector-seconds needs --detector")
    info = write_ensemble(paths, out, registry.build, judge, detector_weight, detector_seconds, temperature)
    record = {"out": str(out), "members": [str(p) for p in paths], "detector": str(judge) if judge else None,
              "labels": info.labels, "bytes": out.stat().st_size}
    if json_:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
    else:
        sys.stdout.write(f"{out}\n")
    common.log(f"{len(paths)} classifier{'s' * (len(paths) > 1)}{' and a detector' if judge else ''} -> {out} "
               f"({_megabytes(record['bytes'])})")


@app.command("average")
def average(members: list[str] = typer.Argument(..., help="Model names or weights files of one network (two or more fine-tunes from one start).",
                                                show_default=False),
            out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt)."),
            float16: bool = typer.Option(False, "--float16", help="Store the averaged tensors as float16 (half the size)."),
            overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace OUT if it exists."),
            json_: bool = JSON_OPTION) -> None:
    """Average the weights of fine-tunes of one network into one network (costs one network to run)."""
    from nsep.models.average import average as write_average

    if out.exists() and not overwrite:
        raise OutputExistsError(str(out))
    paths = [Path(m) if Path(m).is_file() else repo.fetch(repo.entry(m)) for m in members]
    info = write_average(paths, out, float16)
    record = {"out": str(out), "members": [str(p) for p in paths], "task": info.task,
              "architecture": info.architecture, "bytes": out.stat().st_size}
    if json_:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
    else:
        sys.stdout.write(f"{out}\n")
    common.log(f"{len(paths)} {info.architecture} networks averaged -> {out} ({_megabytes(record['bytes'])})")


def _removed_table(records: list[dict[str, Any]]) -> Table:
    table = _columns_table(("removed", "size"), right=("size",))
    for r in records:
        table.add_row(r["path"], _megabytes(r["size"]))
    return table


@app.command("clear-cache")
def clear_cache(names: list[str] = typer.Argument(None, help="Model names (default: the whole cache).", show_default=False),
                yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                repo_location: str = REPO_OPTION, json_: bool = JSON_OPTION) -> None:
    """Delete downloaded weights from the cache (bundled weights are never touched)."""
    _use(repo_location)
    files = repo.cached_files(_entries(names) if names else None)
    if not files:
        common.log(f"nothing to remove in {repo.cache_dir()}")
        raise typer.Exit(common.Reporter("json" if json_ else "table", _removed_table).finish())
    records = [{"path": str(p), "size": p.stat().st_size} for p in files]
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("clear-cache asks for confirmation; pass --yes when stdin is not a terminal")
        total = sum(r["size"] for r in records)
        typer.confirm(f"Remove {len(files)} files ({_megabytes(total)}) from {repo.cache_dir()}?", abort=True)
    repo.remove_cached(files)
    reporter = common.Reporter("json" if json_ else "table", _removed_table)
    for record in records:
        reporter.add(record)
    raise typer.Exit(reporter.finish())
