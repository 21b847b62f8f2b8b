"""Turn command-line arguments (files, folders, globs, ``-``, lists of paths) into audio paths."""

from __future__ import annotations

import glob
import sys
from collections.abc import Iterable
from pathlib import Path

from nsep.audio import AUDIO_EXTENSIONS, STDIN
from nsep.errors import UsageError

GLOB_CHARS = frozenset("*?[")


def read_list(source: str) -> list[str]:
    """Paths from a file with one path a line (``-`` reads stdin); blank lines and ``#`` comments skipped."""
    try:
        text = sys.stdin.read() if source == STDIN else Path(source).read_text()
    except OSError as err:
        raise UsageError(f"{source}: cannot read path list ({err.strerror or err})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _folder(path: Path) -> list[str]:
    found = (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return sorted(str(p) for p in found)


def _expand_one(arg: str) -> list[str]:
    if arg == STDIN:
        return [STDIN]
    path = Path(arg)
    if path.is_dir():
        return _folder(path)
    if not path.exists() and GLOB_CHARS & set(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        files: list[str] = []
        for match in matches:
            files.extend(_folder(Path(match)) if Path(match).is_dir() else [match])
        return files or [arg]  # nothing matched: report the pattern by name
    return [arg]  # a file, or a missing path that loading will report by name


def expand(args: Iterable[str], files_from: str | None = None) -> list[str]:
    """Expand arguments in order, de-duplicated by resolved path; missing paths are kept for reporting."""
    wanted = list(args)
    if files_from is not None:
        if files_from == STDIN and STDIN in wanted:
            raise UsageError("'-' (stdin) can be given only once: as an input or as --files-from")
        wanted.extend(read_list(files_from))
    if wanted.count(STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    seen: set[str] = set()
    result: list[str] = []
    for arg in wanted:
        for path in _expand_one(arg):
            key = path if path == STDIN else str(Path(path).resolve())
            if key not in seen:
                seen.add(key)
                result.append(path)
    return result
