"""Turn command-line arguments (files, folders, globs, ``-``, lists of paths) into audio paths."""

from __future__ import annotations

import glob
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from nsep.audio import AUDIO_EXTENSIONS, GLOB_CHARS, STDIN
from nsep.errors import UsageError


def read_list(source: str) -> list[str]:
    """Paths from a file with one path a line (``-`` reads stdin); blank lines and ``#`` comments skipped."""
    try:
        text = sys.stdin.read() if source == STDIN else Path(source).read_text()
    except OSError as err:
        raise UsageError(f"{source}: cannot read path list ({err.strerror or err})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _folder(path: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        audio = (name for name in files if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS)
        found.extend(os.path.normpath(os.path.join(root, name)) for name in audio)
    return sorted(found)


def _expand_one(arg: str) -> list[str]:
    if arg == STDIN:
        return [STDIN]
    try:
        if stat.S_ISDIR(os.stat(arg).st_mode):
            return _folder(arg)
        return [arg]
    except OSError:
        pass
    if GLOB_CHARS & set(arg):
        files: list[str] = []
        for match in sorted(glob.glob(arg, recursive=True)):
            files.extend(_folder(match) if os.path.isdir(match) else [match])
        return files or [arg]  # nothing matched: report the pattern by name
    return [arg]  # a missing path that loading will report by name


def _identity(path: str) -> object:
    """The same file under any name (links, ``./``) has one identity: its device and inode."""
    if path == STDIN:
        return path
    try:
        status = os.stat(path)
    except OSError:
        return os.path.abspath(path)
    return status.st_dev, status.st_ino


def expand(args: Iterable[str], files_from: str | None = None) -> list[str]:
    """Expand arguments in order, de-duplicated by file identity; missing paths are kept for reporting."""
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
            key = _identity(path)
            if key not in seen:
                seen.add(key)
                result.append(path)
    return result
