"""The model repository: which models exist, where their weights are, fetching and checking them.

A weights file is looked for in this order: the bundled ``weights/`` folder (package
``nsep.weights``), the user cache (``$NSEP_CACHE_DIR/models``, else platformdirs' user cache
``nsep/models``), the folder named by ``--repo``/``NSEP_MODEL_REPO``; failing those it is downloaded
into the cache from the mirror URL named by ``NSEP_MODEL_REPO`` or from the entry's own URL
(never with ``NSEP_OFFLINE=1``).

Every file is checked against the manifest whenever it is fetched (hashes are remembered by path,
size and mtime, so repeated loads stay fast). Files published by demucs are known here only by the
8-hex sha256 prefix in their names (``sha256_prefix``); the first time such a file passes that check
its full sha256 and size are pinned in the cache's ``pins.json`` and checked from then on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.resources
import inspect
import json
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from nsep import download
from nsep.audio import atomic_output
from nsep.errors import NsepError, UsageError

if TYPE_CHECKING:
    from torch import nn

TASKS = ("classify", "detect", "separate")
MIN_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]+")
_OMIT_WHEN_EMPTY = ("sha256_prefix", "parts", "bag_weights")
_repo_override: str | None = None


class IntegrityError(NsepError):
    """A weights file whose size or sha256 is not the one the manifest expects."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class WeightFile:
    """One weights file: its name, how to check it and where to download it."""

    file: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    url: str | None = None

    def validate(self) -> None:
        """Raise ValueError if the file cannot be located or checked safely."""
        if not isinstance(self.file, str) or not self.file or Path(self.file).name != self.file or self.file.startswith("."):
            raise ValueError(f"file must be a plain file name, not {self.file!r}")
        if self.sha256 is not None and not (len(self.sha256) == 64 and _HEX.fullmatch(self.sha256)):
            raise ValueError(f"{self.file}: sha256 must be 64 lower-case hex digits")
        prefix = self.sha256_prefix
        if self.sha256 is None and not (isinstance(prefix, str) and len(prefix) >= MIN_PREFIX and _HEX.fullmatch(prefix)):
            raise ValueError(f"{self.file}: needs sha256, or a sha256_prefix of {MIN_PREFIX}+ hex digits")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"{self.file}: size must be a number of bytes")


@dataclass
class ModelEntry:
    """One model of a manifest: its task, weights, input format, labels, training and metrics.

    A single-file model sets ``file``/``sha256``/``size``/``url``; a bag of models (several
    networks averaged per source, like demucs' htdemucs_ft) lists one :class:`WeightFile` per member
    in ``parts`` and their per-source weights in ``bag_weights``.
    """

    name: str
    task: str
    architecture: str
    sample_rate: int
    channels: int
    labels: list[str]
    file: str | None = None
    sha256: str | None = None
    size: int | None = None
    url: str | None = None
    sha256_prefix: str | None = None
    feature: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    parts: list[WeightFile] = field(default_factory=list)
    bag_weights: list[list[float]] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        """Build and validate an entry; raises ValueError or TypeError on a malformed one."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        parts = [WeightFile(**part) for part in data.get("parts") or []]
        model = cls(**{**data, "parts": parts})
        model.validate()
        return model

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: v for k, v in data.items() if k not in _OMIT_WHEN_EMPTY or v}

    def weight_files(self) -> list[WeightFile]:
        """The files this model needs: its one file, or one per member of a bag."""
        if self.parts:
            return list(self.parts)
        return [WeightFile(self.file or "", self.sha256, self.sha256_prefix, self.size, self.url)]

    def validate(self) -> None:
        """Raise ValueError if the entry cannot be used."""
        if not isinstance(self.name, str) or not self.name or self.name.strip() != self.name:
            raise ValueError(f"name must be a non-empty word, not {self.name!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if bool(self.parts) == bool(self.file):
            raise ValueError("give either file (one weights file) or parts (a bag of models)")
        for part in self.weight_files():
            part.validate()
        if self.bag_weights is not None and len(self.bag_weights) != len(self.parts):
            raise ValueError("bag_weights needs one row per part")


# ---- where things are -------------------------------------------------------------------------


def set_repo(location: str | Path | None) -> None:
    """Use a model folder or mirror URL (``--repo``), overriding ``NSEP_MODEL_REPO``; None resets."""
    global _repo_override
    _repo_override = str(location) if location else None


def _repo_setting() -> str | None:
    return _repo_override or os.environ.get("NSEP_MODEL_REPO") or None


def _is_url(text: str) -> bool:
    return re.match(r"^(https?|file)://", text) is not None


def repo_folder() -> Path | None:
    """The extra model folder from ``--repo``/``NSEP_MODEL_REPO``, if one is set (not a URL)."""
    setting = _repo_setting()
    if not setting or _is_url(setting):
        return None
    folder = Path(setting).expanduser()
    if not folder.is_dir():
        raise UsageError(f"model repository {folder} is not a folder (from --repo or NSEP_MODEL_REPO)")
    return folder


def mirror_url() -> str | None:
    """The mirror URL from ``--repo``/``NSEP_MODEL_REPO``, if it names one."""
    setting = _repo_setting()
    return setting if setting and _is_url(setting) else None


def bundled_dir() -> Path:
    """The folder of weights shipped with nsep (``weights/`` in the source tree)."""
    return Path(str(importlib.resources.files("nsep.weights")))


def cache_dir() -> Path:
    """Where downloaded weights go: ``$NSEP_CACHE_DIR/models`` or the platform's user cache."""
    root = os.environ.get("NSEP_CACHE_DIR") or platformdirs.user_cache_dir("nsep")
    return Path(root).expanduser() / "models"


def offline() -> bool:
    return os.environ.get("NSEP_OFFLINE", "") not in ("", "0")


# ---- the manifest -----------------------------------------------------------------------------


def _read_manifest(path: Path) -> list[ModelEntry]:
    try:
        items = json.loads(path.read_text())["models"]
        if not isinstance(items, list):
            raise TypeError("'models' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise NsepError(f"{path}: unreadable manifest ({type(err).__name__}: {err})") from None
    entries = []
    for number, item in enumerate(items, 1):
        try:
            entries.append(ModelEntry.from_dict(item))
        except (TypeError, ValueError) as err:
            name = item.get("name", f"#{number}") if isinstance(item, dict) else f"#{number}"
            raise NsepError(f"{path}: model {name}: {err}") from None
    return entries


def manifest() -> list[ModelEntry]:
    """Every known model: the bundled manifest, overridden by name by the repo folder's manifest."""
    entries = {m.name: m for m in _read_manifest(bundled_dir() / "manifest.json")}
    folder = repo_folder()
    if folder is not None and (folder / "manifest.json").is_file():
        entries.update((m.name, m) for m in _read_manifest(folder / "manifest.json"))
    return list(entries.values())


def entry(name: str) -> ModelEntry:
    """The manifest entry called ``name``; UsageError listing the known names otherwise."""
    entries = manifest()
    for model in entries:
        if model.name == name:
            return model
    known = ", ".join(sorted(m.name for m in entries)) or "none"
    raise UsageError(f"unknown model {name!r} (known: {known})")


def _entry(model: str | ModelEntry) -> ModelEntry:
    return model if isinstance(model, ModelEntry) else entry(model)


def copies(part: WeightFile) -> list[tuple[str, Path]]:
    """Every local copy of a file as (where, path), in resolution order: bundled, cached, repo."""
    places = [("bundled", bundled_dir()), ("cached", cache_dir())]
    folder = repo_folder()
    if folder is not None:
        places.append(("repo", folder))
    return [(where, base / part.file) for where, base in places if (base / part.file).is_file()]


def location(model: ModelEntry) -> str:
    """Where a model's weights are: bundled, cached or repo; partial (some files) or missing."""
    found = [copies(part) for part in model.weight_files()]
    if all(found):
        return found[0][0][0]
    return "partial" if any(found) else "missing"


# ---- hashes -----------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace a small bookkeeping file atomically; where the cache is read-only, only speed is lost."""
    with contextlib.suppress(OSError), atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def _remember(path: Path, digest: str) -> None:
    """Record the sha256 of ``path`` under its current size and mtime."""
    store = cache_dir() / "hashes.json"
    known = {k: v for k, v in _read_json(store).items() if Path(k).exists()}
    stat = path.stat()
    known[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns, digest]
    _write_json(store, known)


def file_sha256(path: Path, cached: bool = True) -> str:
    """The sha256 of a file; ``cached`` reuses the hash recorded for the same path, size and mtime."""
    path = Path(path)
    if cached:
        stat = path.stat()
        known = _read_json(cache_dir() / "hashes.json").get(str(path.resolve()))
        if isinstance(known, list) and known[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(known[2])
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    _remember(path, digest.hexdigest())
    return digest.hexdigest()


def verify(path: Path, sha256: str, size: int | None = None, cached: bool = True) -> str:
    """Raise IntegrityError unless ``path`` has ``size`` bytes (if given) and a sha256 that is or
    starts with ``sha256``; return the full sha256."""
    if len(sha256) < MIN_PREFIX:
        raise ValueError(f"a sha256 needs at least {MIN_PREFIX} hex digits, got {sha256!r}")
    path = Path(path)
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise IntegrityError(path, f"{actual:,} bytes where {size:,} were expected (truncated or tampered)")
    digest = file_sha256(path, cached)
    if not digest.startswith(sha256.lower()):
        raise IntegrityError(path, f"sha256 {digest[:16]}... is not the expected {sha256[:16]}... (corrupted or tampered)")
    return digest


def expected(part: WeightFile) -> tuple[str, int | None]:
    """The sha256 (full, pinned, or only a prefix) and size a file must have."""
    if part.sha256:
        return part.sha256, part.size
    prefix = part.sha256_prefix or ""
    pin = _read_json(cache_dir() / "pins.json").get(part.file)
    if prefix and isinstance(pin, dict) and str(pin.get("sha256", "")).startswith(prefix):
        return pin["sha256"], pin.get("size")
    return prefix, part.size


def _pin(part: WeightFile, digest: str, size: int) -> None:
    pins = _read_json(cache_dir() / "pins.json")
    pins[part.file] = {"sha256": digest, "size": size}
    _write_json(cache_dir() / "pins.json", pins)


def check(part: WeightFile, path: Path, cached: bool = True) -> None:
    """Verify one local copy of a file; a file known only by a prefix gets its full hash pinned."""
    sha256, size = expected(part)
    digest = verify(path, sha256, size, cached)
    if len(sha256) < len(digest):
        _pin(part, digest, path.stat().st_size)


# ---- fetching ---------------------------------------------------------------------------------


def fetch(model: str | ModelEntry, progress: bool = True) -> Path:
    """The checked local path of a single-file model's weights, downloaded on first use.

    ``progress`` shows download notes and a progress bar on stderr (the bar only on a terminal).
    """
    model = _entry(model)
    if model.parts:
        raise UsageError(f"model {model.name} is a bag of {len(model.parts)} files; use fetch_all")
    return _fetch_part(model.name, model.weight_files()[0], progress)


def fetch_all(model: str | ModelEntry, progress: bool = True) -> list[Path]:
    """The checked local paths of every file a model needs (one, or one per bag member)."""
    model = _entry(model)
    return [_fetch_part(model.name, part, progress) for part in model.weight_files()]


def _fetch_part(name: str, part: WeightFile, progress: bool) -> Path:
    label = f"model {name}"
    found = copies(part)
    if not found:
        _download(name, part, progress)
        found = copies(part)
    where, path = found[0]
    try:
        check(part, path)
    except IntegrityError as err:
        remedy = f"run `nsep models clear-cache {name}` to download it again" if where == "cached" else "replace it"
        raise IntegrityError(err.path, f"{label}: {err.reason}; {remedy}") from None
    return path


def _sources(part: WeightFile) -> list[str]:
    mirror = mirror_url()
    urls = [f"{mirror.rstrip('/')}/{part.file}"] if mirror else []
    return urls + ([part.url] if part.url else [])


def _download(name: str, part: WeightFile, progress: bool) -> None:
    """Download a missing file into the cache, one process at a time; the others wait and reuse it."""
    cache = cache_dir()
    target = cache / part.file
    sources = _sources(part)
    if offline() or not sources:
        why = "NSEP_OFFLINE is set" if offline() else "the manifest gives no URL"
        fetch_from = f"download it from {sources[-1]} and " if sources else ""
        raise NsepError(f"model {name}: {part.file} is missing and {why}; {fetch_from}place it at {target} "
                        "(or in the folder given by --repo/NSEP_MODEL_REPO)")
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{part.file}.lock", f"model {name}", progress):
        if target.exists():
            return  # another process downloaded it while this one waited
        failures = []
        for url in sources:
            try:
                digest = _download_from(url, f"model {name}", part, target.with_name(target.name + ".part"), progress)
            except download.DownloadError as err:
                failures.append(str(err))
                continue
            os.replace(target.with_name(target.name + ".part"), target)
            _remember(target, digest)
            return
        raise download.DownloadError("; ".join(failures))


def _download_from(url: str, label: str, part: WeightFile, partial: Path, progress: bool) -> str:
    """Complete and verify ``partial`` from ``url``; return its sha256. A resumed file that fails
    the check is started over once, since its first half may come from an older file."""
    resumed = partial.exists()
    if progress:
        size = f" ({part.size / 1e6:.1f} MB)" if part.size else ""
        download.note(f"{'resuming' if resumed else 'downloading'} {label}{size} from {url}")
    download.download(url, partial, part.size, label, progress)
    sha256, size = expected(part)
    try:
        digest = verify(partial, sha256, size, cached=False)
    except IntegrityError as err:
        partial.unlink(missing_ok=True)
        if resumed:
            return _download_from(url, label, part, partial, progress)
        raise IntegrityError(partial, f"{label}: the file from {url} failed its check: {err.reason}; nothing was cached") from None
    if len(sha256) < len(digest):
        _pin(part, digest, partial.stat().st_size)
    return digest


@contextlib.contextmanager
def _locked(path: Path, label: str, progress: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: one process downloads, the others wait for it."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                download.note(f"{label}: waiting for another nsep process to finish downloading it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---- the cache --------------------------------------------------------------------------------


def cached_files(models: list[ModelEntry] | None = None) -> list[Path]:
    """Cached files of ``models`` (with their partial downloads), or all of the cache but its locks."""
    cache = cache_dir()
    if not cache.is_dir():
        return []
    if models is None:
        return sorted(p for p in cache.iterdir() if p.is_file() and p.suffix != ".lock")
    names = {name for m in models for part in m.weight_files() for name in (part.file, f"{part.file}.part")}
    return sorted(cache / name for name in names if (cache / name).is_file())


def remove_cached(paths: list[Path]) -> None:
    """Delete cached files and forget their pins."""
    for path in paths:
        path.unlink(missing_ok=True)
    pins = _read_json(cache_dir() / "pins.json")
    kept = {name: pin for name, pin in pins.items() if (cache_dir() / name).exists()}
    if kept != pins:
        _write_json(cache_dir() / "pins.json", kept)


# ---- registering trained weights --------------------------------------------------------------


def register(model: ModelEntry, path: Path, manifest_path: Path | None = None) -> ModelEntry:
    """Describe the weights at ``path`` in a manifest, computing file name, sha256 and size.

    The manifest defaults to ``manifest.json`` beside the weights; an entry of the same name is
    replaced. Returns the entry as written.
    """
    path = Path(path)
    if not path.is_file():
        raise NsepError(f"{path}: no such weights file")
    written = dataclasses.replace(model, file=path.name, sha256=file_sha256(path, cached=False), sha256_prefix=None,
                                  size=path.stat().st_size, parts=[], bag_weights=None)
    try:
        written.validate()
    except ValueError as err:
        raise NsepError(f"model {model.name}: {err}") from None
    target = Path(manifest_path) if manifest_path else path.parent / "manifest.json"
    entries = _read_manifest(target) if target.exists() else []
    names = [m.name for m in entries]
    if written.name in names:
        entries[names.index(written.name)] = written
    else:
        entries.append(written)
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"models": [m.to_dict() for m in entries]}, indent=2) + "\n")
    return written


# ---- demucs -----------------------------------------------------------------------------------


def _demucs_classes() -> list[type]:
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    return [Demucs, HDemucs, HTDemucs]


def _demucs_package(path: Path) -> nn.Module:
    """Build one network from a demucs package (a dict of klass, args, kwargs, state) without
    running any code from the file: ``weights_only`` unpickling, allowing only the demucs model
    classes and ``Fraction`` (HTDemucs keeps its segment length as one)."""
    import torch

    classes = _demucs_classes()
    try:
        with torch.serialization.safe_globals([*classes, Fraction]):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"it refers to {found.group(1)}, which is not on the allow-list" if found else str(err).splitlines()[0]
        raise NsepError(f"{path}: refusing to load this demucs package: {what}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise NsepError(f"{path}: not a readable demucs package ({str(err).splitlines()[0]})") from None
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= package.keys():
        raise NsepError(f"{path}: not a demucs package (expected a dict with klass, args, kwargs, state)")
    klass, state = package["klass"], package["state"]
    if klass not in classes:
        raise NsepError(f"{path}: not a demucs model class: {klass!r}")
    if not isinstance(state, dict) or state.get("__quantized"):
        raise NsepError(f"{path}: unsupported demucs weights (quantized with diffq, or not a state dict)")
    accepted = inspect.signature(klass).parameters
    model = klass(*package["args"], **{k: v for k, v in package["kwargs"].items() if k in accepted})
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise NsepError(f"{path}: the weights do not fit {klass.__name__} ({str(err).splitlines()[0]})") from None
    return model.eval()


def load_demucs(source: Path | str | ModelEntry, progress: bool = True) -> nn.Module:
    """A demucs network in eval mode on the CPU.

    ``source`` is a package file (a Path), or a model name or entry, whose files are fetched and
    checked first; a bag entry (``parts``) becomes a ``demucs.apply.BagOfModels``.
    """
    if isinstance(source, Path):
        return _demucs_package(source)
    model = _entry(source)
    networks = [_demucs_package(path) for path in fetch_all(model, progress)]
    if not model.parts:
        return networks[0]
    from demucs.apply import BagOfModels

    return BagOfModels(networks, model.bag_weights).eval()
