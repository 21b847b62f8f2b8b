"""Resumable HTTP downloads: stream into a ``.part`` file, continue it with Range, retry with backoff.

Plain urllib, so proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``) work unasked.
``NSEP_TIMEOUT`` sets the seconds a connection or a read may stall (default 30).
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from nsep import __version__
from nsep.errors import NsepError, UsageError

ATTEMPTS = 4
BACKOFF_S = 1.0  # waits 1, 2, 4 s between attempts
CHUNK = 1 << 16
DEFAULT_TIMEOUT_S = 30.0
_stderr = Console(stderr=True, highlight=False)


class DownloadError(NsepError):
    """A download that failed for good; the message names what and where."""


class _Retry(Exception):
    """A failure worth another attempt (timeout, cut connection, server error)."""


class _Fatal(Exception):
    """A failure that another attempt would repeat (404, refused connection, wrong size)."""


def timeout_s() -> float:
    """Seconds a connection or a read may stall, from ``NSEP_TIMEOUT``."""
    text = os.environ.get("NSEP_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise UsageError(f"NSEP_TIMEOUT must be a positive number of seconds, got {text!r}")
    return value


def note(message: str) -> None:
    """An informational line on stderr."""
    _stderr.print(f"nsep: {message}", markup=False)


def download(url: str, part: Path, size: int | None, label: str, progress: bool = True) -> None:
    """Complete ``part`` with the body of ``url``, resuming what it already holds.

    ``size`` (bytes, if known) refuses a body of another length before it is fetched.
    Raises :class:`DownloadError` naming ``label`` and ``url``.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_stderr, transient=True, disable=not progress or not _stderr.is_terminal) as bar:
        task = bar.add_task(label, total=size)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _attempt(url, part, size, bar, task)
                return
            except _Fatal as err:
                raise DownloadError(f"{label}: cannot download {url}: {err}") from None
            except _Retry as err:
                if attempt == ATTEMPTS:
                    raise DownloadError(f"{label}: cannot download {url}: {err} ({ATTEMPTS} attempts)") from None
                wait = BACKOFF_S * 2 ** (attempt - 1)
                if progress:
                    note(f"{label}: {err}; retrying in {wait:g} s")
                time.sleep(wait)


def _attempt(url: str, part: Path, size: int | None, bar: Progress, task: TaskID) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is not None and have == size:
        return
    headers = {"User-Agent": f"nsep/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    response = _open(urllib.request.Request(url, headers=headers), resuming=have > 0, part=part)
    with response:
        if have and not _continues(response, have):
            have = 0  # the server sent the whole file (no Range support) or another range
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else size
        if size is not None and total is not None and total != size:
            raise _Fatal(f"the server offers {total:,} bytes but the manifest expects {size:,}")
        bar.update(task, total=total, completed=have)
        with open(part, "ab" if have else "wb") as out:
            _copy(response, out, bar, task)
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Retry(f"connection closed after {got:,} of {total:,} bytes")


def _open(request: urllib.request.Request, resuming: bool, part: Path) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(request, timeout=timeout_s())
    except urllib.error.HTTPError as err:
        if err.code == 416 and resuming:
            part.unlink(missing_ok=True)
            raise _Retry("the server cannot resume the partial file; starting over") from None
        reason = f"HTTP {err.code} {err.reason}"
        if err.code >= 500 or err.code in (408, 429):
            raise _Retry(reason) from None
        raise _Fatal(reason) from None
    except urllib.error.URLError as err:
        raise _classify(err.reason) from None
    except (OSError, http.client.HTTPException) as err:
        raise _classify(err) from None
    except ValueError as err:  # a malformed URL
        raise _Fatal(str(err)) from None


def _continues(response: http.client.HTTPResponse, have: int) -> bool:
    """Whether a response to a Range request starts exactly where the partial file ends."""
    if response.status != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == have


def _copy(response: http.client.HTTPResponse, out: BinaryIO, bar: Progress, task: TaskID) -> None:
    try:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            bar.advance(task, len(chunk))
    except (OSError, http.client.HTTPException) as err:
        raise _classify(err) from None


def _classify(reason: object) -> Exception:
    """Turn a socket-level failure into a retryable or final one with a readable reason."""
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return _Retry(f"timed out after {timeout_s():g} s (NSEP_TIMEOUT sets the limit)")
    if isinstance(reason, ConnectionRefusedError):
        return _Fatal("connection refused (is the server up? behind a proxy, set HTTPS_PROXY)")
    if isinstance(reason, socket.gaierror):
        return _Fatal("cannot resolve the host name (offline? set NSEP_OFFLINE=1 and place the file by hand)")
    if isinstance(reason, str):
        return _Fatal(reason)
    if isinstance(reason, (ConnectionError, http.client.HTTPException)):
        return _Retry(f"connection lost ({type(reason).__name__})")
    return _Retry(str(reason) or type(reason).__name__)
