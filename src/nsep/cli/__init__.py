"""The ``nsep`` command: a thin Typer front over the engine."""

from __future__ import annotations

import os
import re
import signal
import sys
import traceback

import typer

from nsep import __version__, distributed, memory
from nsep.cli import common
from nsep.errors import NsepError, UsageError

app = typer.Typer(
    rich_markup_mode=common.HELP_MARKUP,
    name="nsep",
    help="Recognise and separate musical instruments in audio.",
    no_args_is_help=True,
    add_completion=True,  # also registers the shell-completion protocol (_NSEP_COMPLETE)
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nsep {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Say more on stderr (repeatable)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Recognise and separate musical instruments in audio."""
    common.settings.quiet = quiet
    common.settings.verbose = verbose
    common.settings.debug = debug or bool(os.environ.get("NSEP_DEBUG"))


def _register() -> None:
    from nsep.cli import classify, evaluate, spectrogram, train
    from nsep.cli import models
    from nsep.cli import data
    from nsep.cli import detect
    from nsep.cli import separate

    spectrogram.register(app)
    classify.register(app)
    detect.register(app)
    separate.register(app)
    app.add_typer(train.app, name="train")
    app.add_typer(evaluate.app, name="eval")
    app.add_typer(models.app, name="models")
    app.add_typer(data.app, name="data")


_register()


_GLOBAL_FLAGS = re.compile(r"-q|--quiet|-v+|--verbose|--debug")


def hoist_global_flags(args: list[str]) -> list[str]:
    """``-q``, ``-v`` and ``--debug`` given after the command (``nsep classify x.wav -q``) moved to
    the front, where the group reads them; nothing after ``--`` is touched."""
    end = args.index("--") if "--" in args else len(args)
    first = next((i for i, arg in enumerate(args[:end]) if not arg.startswith("-")), end)
    late = [arg for arg in args[first:end] if _GLOBAL_FLAGS.fullmatch(arg)]
    rest = [arg for arg in args[first:end] if not _GLOBAL_FLAGS.fullmatch(arg)]
    return late + args[:first] + rest + args[end:]


def _terminate(signum: int, _frame: object) -> None:
    """Unwind on SIGTERM, so ``finally`` blocks remove partly written outputs."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point: turn expected errors into one line and an exit status, never a traceback."""
    signal.signal(signal.SIGTERM, _terminate)
    memory.reuse_freed_memory()
    memory.limit_gpu_fragmentation()
    try:
        app(args=hoist_global_flags(sys.argv[1:]), standalone_mode=True)
    except SystemExit as done:
        if not done.code:  # success; in a group every process is done with the others, so all leave together
            distributed.leave(together=True)
        raise
    except UsageError as err:
        common.error(str(err))
        sys.exit(2)
    except NsepError as err:
        common.error(str(err))
        sys.exit(1)
    except KeyboardInterrupt:
        common.error("interrupted")
        sys.exit(130)
    except Exception as err:
        if common.settings.debug:
            traceback.print_exc()
        common.error(f"{type(err).__name__}: {err}" + ("" if common.settings.debug else " (--debug shows more)"))
        sys.exit(1)
