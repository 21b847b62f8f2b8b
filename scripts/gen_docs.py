"""Generate the shell completions and the man page from the Typer app.

    python scripts/gen_docs.py           # (re)write completions/ and man/
    python scripts/gen_docs.py --check   # exit 1 if any of them is stale

Completion scripts are what ``_NSEP_COMPLETE=source_SHELL nsep`` prints (Typer's protocol); the man
page walks the command tree, so commands added to the app appear without changing this script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from nsep import __version__
from nsep.cli import app

ROOT = Path(__file__).resolve().parents[1]
PROG = "nsep"
COMPLETE_VAR = "_NSEP_COMPLETE"
COMPLETIONS = {"bash": "completions/nsep.bash", "zsh": "completions/_nsep", "fish": "completions/nsep.fish"}
MAN_PAGE = "man/nsep.1"

ENVIRONMENT = {
    "NO_COLOR": "When set to any value, print no colours.",
    "NSEP_CACHE_DIR": "Folder for downloaded model weights (in its models/ sub-folder); "
                      "default: the platform's user cache folder for nsep.",
    "NSEP_MODEL_REPO": "A folder of weights with its own manifest.json, or a mirror URL, searched before "
                       "downloading; --repo overrides it.",
    "NSEP_OFFLINE": "When set to anything but 0, never download: use bundled, cached or repository weights only.",
    "NSEP_DEBUG": "When set, behave as with --debug: show tracebacks of unexpected errors.",
    "NSEP_TIMEOUT": "Seconds a download may stall before it is given up (default 30).",
}
EXIT_STATUS = {
    "0": "Success: every input was processed.",
    "1": "At least one input failed (each failure is one \"nsep: error: PATH: reason\" line on stderr; "
         "the others were still processed), or an unexpected error.",
    "2": "Usage error: the command line cannot be carried out as given; nothing was processed.",
    "130": "Interrupted (Ctrl-C); 143 when terminated. Partly written outputs are removed.",
}


def completion_script(shell: str) -> str:
    """What ``_NSEP_COMPLETE=source_SHELL nsep`` prints, asked of the app itself."""
    command = typer.main.get_command(app)
    out = io.StringIO()
    previous = os.environ.get(COMPLETE_VAR)
    os.environ[COMPLETE_VAR] = f"source_{shell}"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            command.main(args=[], prog_name=PROG, complete_var=COMPLETE_VAR)
    finally:
        if previous is None:
            del os.environ[COMPLETE_VAR]
        else:
            os.environ[COMPLETE_VAR] = previous
    return out.getvalue().strip() + "\n"  # zsh wants '#compdef' on the first line


def roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, and lines that would start a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _walk(command, ctx) -> Iterator[tuple[object, object]]:
    """Every command below ``ctx`` (depth first, in the app's order) with its context."""
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = sub.context_class(sub, info_name=name, parent=ctx, **sub.context_settings)
        yield sub, sub_ctx
        if hasattr(sub, "list_commands"):
            yield from _walk(sub, sub_ctx)


def _params(command, ctx, with_help: bool = False) -> list[str]:
    """``.TP`` entries for a command's arguments and options (``-h/--help`` only where asked)."""
    lines = []
    for param in command.get_params(ctx):
        shown = not getattr(param, "hidden", False) and (with_help or param.name != "help")
        record = param.get_help_record(ctx) if shown else None
        if record:
            names, help_text = record
            lines += [".TP", f"\\fB{roff(names)}\\fR", roff(help_text) or "\\&"]
    return lines


def _usage(command, ctx) -> str:
    return " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])


def man_page() -> str:
    """The man page as roff, built from the command tree; no dates, so it is reproducible."""
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name=PROG, **root.context_settings)
    summary = (root.help or "").strip().splitlines()[0].rstrip(".")
    lines = [
        f'.TH NSEP 1 "" "nsep {__version__}" "User Commands"',
        ".SH NAME",
        f"nsep \\- {roff(summary[0].lower() + summary[1:])}",
        ".SH SYNOPSIS",
        f".B {PROG}",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        roff(root.help or ""),
        ".PP",
        "Results go to standard output (a table on a terminal; JSON, JSON lines or CSV with \\fB\\-\\-json\\fR, "
        "\\fB\\-\\-jsonl\\fR, \\fB\\-\\-csv\\fR); logs, progress and errors go to standard error. "
        "Inputs may be files, folders (searched recursively for audio), quoted globs, \\fB\\-\\fR for standard "
        "input, or lists given with \\fB\\-\\-files\\-from\\fR. Outputs are written atomically and never "
        "replaced without \\fB\\-\\-overwrite\\fR.",
        ".SH GLOBAL OPTIONS",
        *_params(root, ctx, with_help=True),
        ".SH COMMANDS",
    ]
    for command, sub_ctx in _walk(root, ctx):
        lines += [f'.SS "{roff(_usage(command, sub_ctx))}"', roff((command.help or command.short_help or "").strip())]
        lines += _params(command, sub_ctx)
    lines.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT.items():
        lines += [".TP", f".B {name}", roff(text)]
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS.items():
        lines += [".TP", f".B {code}", roff(text)]
    lines += [".SH FILES", ".TP", ".B completions/nsep.bash, completions/_nsep, completions/nsep.fish",
              "Shell completion scripts, also printed by \\fB_NSEP_COMPLETE=source_bash nsep\\fR (or zsh, fish).",
              ".SH SEE ALSO", "README.md, docs/ARCHITECTURE.md, docs/DATA.md, docs/MODELS.md, docs/PERFORMANCE.md"]
    return "\n".join(lines) + "\n"


def documents() -> dict[str, str]:
    """Each generated file, by its path relative to the repository root."""
    docs = {path: completion_script(shell) for shell, path in COMPLETIONS.items()}
    docs[MAN_PAGE] = man_page()
    return docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate completions/ and man/ from the nsep app.")
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a file is stale.")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in documents().items():
        path = ROOT / relative
        if path.exists() and path.read_text() == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)} (run: python scripts/gen_docs.py)", file=sys.stderr)
        return 1
    for relative in stale:
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
