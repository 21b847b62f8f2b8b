"""What every command shares: verbosity, stderr logging, progress, output formats, per-input errors."""

from __future__ import annotations

import csv
import json
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from nsep import distributed
from nsep.errors import NsepError, UsageError


@dataclass
class Settings:
    quiet: bool = False
    verbose: int = 0
    debug: bool = False


settings = Settings()
# No emoji codes (a path may hold ":smile:") and no wrapping: a message stays one line, as written.
stderr = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)
stdout = Console(highlight=False, emoji=False, soft_wrap=True)
PIPED_WIDTH = 10_000  # a table written to a file or a pipe keeps each row on one line
# Help text as Markdown: a paragraph's lines are joined (Typer's `rich` mode kept each line break) and
# "[env: NSEP_MODEL_REPO]" is shown (`rich` mode read it as markup and dropped it).
HELP_MARKUP = "markdown"


def _quiet() -> bool:
    """-q, or a process other than the first of a group (which speaks for all)."""
    return settings.quiet or not distributed.is_main()


def log(message: str, level: int = 0) -> None:
    """An informational line on stderr (level 1 needs -v); silent with -q."""
    if not _quiet() and settings.verbose >= level:
        stderr.print(message, markup=False)


def warn(message: str) -> None:
    if not _quiet():
        stderr.print(f"nsep: warning: {message}", markup=False, style="yellow")


def error(message: str) -> None:
    """One line on stderr, always shown."""
    stderr.print(f"nsep: error: {message}", markup=False, style="red")


def progress(total: int | None, description: str) -> Progress:
    """A progress bar on stderr, hidden when stderr is not a terminal or with -q."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=_quiet() or not stderr.is_terminal,
    )


def input_files(paths: list[str] | None, files_from: str | None) -> list[str]:
    """The audio files named on the command line; none at all is a usage error."""
    from nsep import inputs

    if distributed.world() > 1 and inputs.STDIN in (*(paths or []), files_from):
        raise UsageError("several processes cannot share stdin: give paths or --files-from FILE")
    files = inputs.expand(paths or [], files_from)
    if not files:
        raise UsageError("no input files (give files, folders, globs, or --files-from)")
    return files


def output_format(json_: bool, jsonl: bool, csv_: bool) -> str:
    chosen = [name for name, on in (("json", json_), ("jsonl", jsonl), ("csv", csv_)) if on]
    if len(chosen) > 1:
        raise UsageError("choose one of --json, --jsonl, --csv")
    return chosen[0] if chosen else "table"


JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document with every result.")
JSONL_OPTION = typer.Option(False, "--jsonl", help="Print one JSON object a line, as results come.")
CSV_OPTION = typer.Option(False, "--csv", help="Print CSV with a header row.")


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


class Reporter:
    """Collects result records and prints them as a table, JSON, JSON lines or CSV on stdout.

    ``sharded``: in a group of processes each reports on its :func:`nsep.distributed.shard` of the
    inputs, one :meth:`add` or :meth:`fail` per input, in order; :meth:`finish` merges everyone's
    records in input order and the first process prints them (JSON lines, too, then come at the end).
    """

    def __init__(self, fmt: str, table: Callable[[list[dict[str, Any]]], Table], sharded: bool = False):
        self.fmt = fmt
        self.table = table
        self.records: list[dict[str, Any]] = []
        self.failures = 0
        self.slots: list[dict[str, Any] | None] | None = [] if sharded and distributed.world() > 1 else None

    def add(self, record: dict[str, Any]) -> None:
        if self.slots is not None:
            self.slots.append(record)
        elif self.fmt == "jsonl":
            self._line(record)
        else:
            self.records.append(record)

    def fail(self, message: str) -> None:
        self.failures += 1
        error(message)
        if self.slots is not None:
            self.slots.append(None)

    @staticmethod
    def _line(record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def finish(self) -> int:
        """Print what was collected; return the exit status (1 if any input failed)."""
        if self.slots is not None:
            self.records = [r for r in distributed.gather(self.slots) if r is not None]
            self.failures = int(distributed.all_sum([self.failures])[0])
            if not distributed.is_main():
                return 1 if self.failures else 0
            if self.fmt == "jsonl":
                for record in self.records:
                    self._line(record)
        if self.fmt == "json":
            sys.stdout.write(json.dumps(self.records, indent=2) + "\n")
        elif self.fmt == "csv" and self.records:
            rows = [_flatten(r) for r in self.records]
            fields = list(dict.fromkeys(k for row in rows for k in row))
            writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        elif self.fmt == "table" and self.records:
            table = self.table(self.records)
            for column in table.columns:
                column.overflow = "fold"  # wrap long paths in their cell, never cut them short
            wide = Console(highlight=False, emoji=False, width=PIPED_WIDTH)  # print() cannot exceed a console's width
            (stdout if stdout.is_terminal else wide).print(table)
        sys.stdout.flush()
        return 1 if self.failures else 0


def each_input(paths: Iterable[str], reporter: Reporter, description: str) -> Iterator[str]:
    """Iterate over inputs with a progress bar; not needed when work runs in an engine."""
    items = list(paths)
    with progress(len(items), description) as bar:
        task = bar.add_task(description, total=len(items))
        for path in items:
            yield path
            bar.advance(task)


def guarded(reporter: Reporter, label: str, work: Callable[[], None]) -> None:
    """Run one input's work; an error becomes one line on stderr and the batch goes on."""
    try:
        work()
    except NsepError as err:
        reporter.fail(str(err))
    except KeyboardInterrupt:
        raise
    except Exception as err:  # an unforeseen failure still names the file, never a traceback
        if settings.debug:
            traceback.print_exc()
        reporter.fail(f"{label}: {type(err).__name__}: {err}" + ("" if settings.debug else " (--debug shows more)"))

