"""nsep.repo: manifests, fetching over real HTTP (127.0.0.1), integrity checks, safe demucs loading."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from model_server import file_entry, model_repo, serve_model, server, write_manifest  # noqa: F401 (fixtures)

from nsep import download, repo
from nsep.errors import NsepError, UsageError


def cache() -> Path:
    return repo.cache_dir()


def test_first_use_downloads_then_the_cache_serves(server, model_repo):
    body = serve_model(server, model_repo)
    path = repo.fetch("blob", progress=False)
    assert path == cache() / "blob.pt" and path.read_bytes() == body
    assert not (cache() / "blob.pt.part").exists()
    assert repo.fetch("blob", progress=False) == path
    assert len(server.requests) == 1
    assert repo.location(repo.entry("blob")) == "cached"


def test_corrupted_bytes_are_refused_and_nothing_is_cached(server, model_repo):
    serve_model(server, model_repo)
    server.faults.corrupt = True
    with pytest.raises(repo.IntegrityError) as caught:
        repo.fetch("blob", progress=False)
    message = str(caught.value)
    assert "model blob" in message and server.url("blob.pt") in message and "nothing was cached" in message
    assert "\n" not in message
    assert not (cache() / "blob.pt").exists() and not (cache() / "blob.pt.part").exists()


def test_a_cut_connection_is_resumed_with_range(server, model_repo):
    body = serve_model(server, model_repo)
    server.faults.cut_next = 1
    assert repo.fetch("blob", progress=False).read_bytes() == body
    assert server.requests == [("blob.pt", None), ("blob.pt", f"bytes={len(body) // 2}-")]


def test_an_interrupted_run_is_continued_by_the_next(server, model_repo, monkeypatch):
    body = serve_model(server, model_repo)
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    server.faults.cut_next = 1
    with pytest.raises(download.DownloadError, match="connection closed after"):
        repo.fetch("blob", progress=False)
    assert (cache() / "blob.pt.part").stat().st_size == len(body) // 2
    assert repo.fetch("blob", progress=False).read_bytes() == body
    assert server.requests[-1] == ("blob.pt", f"bytes={len(body) // 2}-")


def test_a_stale_partial_file_is_started_over(server, model_repo):
    body = serve_model(server, model_repo)
    cache().mkdir(parents=True)
    (cache() / "blob.pt.part").write_bytes(b"x" * 1000)
    assert repo.fetch("blob", progress=False).read_bytes() == body
    assert [r for _, r in server.requests] == ["bytes=1000-", None]


def test_offline_mode_names_the_file_place_and_url_without_a_request(server, model_repo, monkeypatch):
    serve_model(server, model_repo)
    monkeypatch.setenv("NSEP_OFFLINE", "1")
    with pytest.raises(NsepError) as caught:
        repo.fetch("blob")
    message = str(caught.value)
    assert "blob.pt" in message and str(cache() / "blob.pt") in message and server.url("blob.pt") in message
    assert server.requests == []


def test_a_stalled_server_times_out(server, model_repo, monkeypatch):
    serve_model(server, model_repo)
    server.faults.stall_s = 1.0
    monkeypatch.setenv("NSEP_TIMEOUT", "0.2")
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    with pytest.raises(download.DownloadError, match=r"model blob: cannot download .*timed out after 0.2 s"):
        repo.fetch("blob", progress=False)


def test_a_mirror_url_is_tried_before_the_entry_url(server, model_repo):
    body = serve_model(server, model_repo)
    server.files["mirror/blob.pt"] = body
    repo.set_repo(server.url("mirror"))
    write_manifest(model_repo, [])
    with pytest.raises(UsageError):  # a mirror has no manifest: the folder's entries are gone
        repo.entry("blob")
    assert repo.fetch(repo.ModelEntry.from_dict(file_entry("blob", "blob.pt", body, None))).read_bytes() == body
    assert server.requests == [("mirror/blob.pt", None)]


def _fetch_in_child(results) -> None:
    results.put(str(repo.fetch("blob", progress=False)))


def test_two_processes_download_once(server, model_repo):
    body = serve_model(server, model_repo, size=400_000)
    server.faults.chunk_delay_s = 0.05  # about 1.2 s for the whole file
    context = multiprocessing.get_context("fork")  # children start at once, torch already imported
    results = context.Queue()
    children = [context.Process(target=_fetch_in_child, args=(results,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0, 0]
    assert {results.get(timeout=5) for _ in children} == {str(cache() / "blob.pt")}
    assert server.full_gets("blob.pt") == 1 and len(server.requests) == 1
    assert (cache() / "blob.pt").read_bytes() == body


def test_a_prefix_only_file_gets_its_full_hash_pinned(server, model_repo):
    body = serve_model(server, model_repo)
    digest = hashlib.sha256(body).hexdigest()
    write_manifest(model_repo, [file_entry("blob", "blob.pt", body, server.url("blob.pt"),
                                           sha256=None, sha256_prefix=digest[:8], size=None)])
    part = repo.entry("blob").weight_files()[0]
    assert repo.expected(part) == (digest[:8], None)
    repo.fetch("blob", progress=False)
    assert repo.expected(part) == (digest, len(body))
    assert json.loads((cache() / "pins.json").read_text())["blob.pt"]["sha256"] == digest


def test_hashes_are_cached_by_size_and_mtime(tmp_path, model_repo):
    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 100)
    first = repo.file_sha256(path)
    stamp = path.stat().st_mtime_ns
    path.write_bytes(b"b" * 100)
    os.utime(path, ns=(stamp, stamp))
    assert repo.file_sha256(path) == first  # same size and mtime: the remembered hash
    assert repo.file_sha256(path, cached=False) == hashlib.sha256(b"b" * 100).hexdigest()
    with pytest.raises(repo.IntegrityError, match="100 bytes where 99 were expected"):
        repo.verify(path, first, 99)
    with pytest.raises(repo.IntegrityError, match="corrupted or tampered"):
        repo.verify(path, first, 100)


def test_register_writes_an_entry_that_resolves_without_network(tmp_path, model_repo):
    weights = model_repo / "mine.pt"
    weights.write_bytes(b"trained")
    model = repo.ModelEntry(name="classify-mine", task="classify", architecture="cnn", sample_rate=16000,
                            channels=1, labels=["x", "y"], training={"command": "nsep train ...", "data": "nsynth"})
    written = repo.register(model, weights)
    assert written.sha256 == hashlib.sha256(b"trained").hexdigest() and written.size == 7
    repo.register(model, weights)  # the same name again replaces, not appends
    assert [m["name"] for m in json.loads((model_repo / "manifest.json").read_text())["models"]] == ["classify-mine"]
    assert repo.entry("classify-mine").to_dict() == written.to_dict()
    assert repo.fetch("classify-mine") == weights
    assert repo.location(written) == "repo"


@pytest.mark.parametrize("change, complaint", [({"file": "../evil.pt"}, "plain file name"),
                                               ({"task": "dance"}, "task must be one of"),
                                               ({"sha256": "abc"}, "64 lower-case hex"),
                                               ({"colour": "red"}, "unknown field")])
def test_malformed_manifest_entries_are_named(model_repo, change, complaint):
    write_manifest(model_repo, [{**file_entry("bad", "bad.pt", b"x", None), **change}])
    with pytest.raises(NsepError, match=complaint):
        repo.manifest()


def test_unknown_model_lists_the_known_ones(model_repo):
    with pytest.raises(UsageError, match=r"unknown model 'nope' \(known: .*htdemucs"):
        repo.entry("nope")


def _demucs_package(folder: Path, tag: str, sources: list[str] = ["drums", "bass"]) -> tuple[Path, torch.nn.Module]:
    """A tiny random HTDemucs saved the way demucs saves its packages."""
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    torch.manual_seed(len(tag))
    model = HTDemucs(sources=sources, channels=8, t_layers=1, t_heads=2, segment=Fraction(39, 5))
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=False),
               "training_args": {"epochs": 1}}
    save_with_checksum(package, folder / f"{tag}.th")
    return next(folder.glob(f"{tag}-*.th")), model


def _demucs_entry(name: str, path: Path, **fields) -> dict:
    prefix = path.stem.rsplit("-", 1)[1]
    return {"name": name, "task": "separate", "architecture": "htdemucs", "sample_rate": 44100, "channels": 2,
            "labels": ["drums", "bass"], "file": path.name, "sha256_prefix": prefix, **fields}


def test_demucs_packages_load_safely(model_repo):
    path, original = _demucs_package(model_repo, "tiny")
    loaded = repo.load_demucs(path)
    assert type(loaded).__name__ == "HTDemucs" and not loaded.training and loaded.sources == ["drums", "bass"]
    assert loaded.segment == Fraction(39, 5)
    for (name, a), b in zip(original.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    write_manifest(model_repo, [_demucs_entry("tiny", path)])
    assert type(repo.load_demucs("tiny")).__name__ == "HTDemucs"  # by name: located, checked by prefix, loaded


def test_a_demucs_bag_loads_as_bag_of_models(model_repo):
    first, _ = _demucs_package(model_repo, "drums")
    second, _ = _demucs_package(model_repo, "bass")
    parts = [{"file": p.name, "sha256_prefix": p.stem.rsplit("-", 1)[1]} for p in (first, second)]
    bag = _demucs_entry("tiny_ft", first, parts=parts, bag_weights=[[1.0, 0.0], [0.0, 1.0]])
    del bag["file"], bag["sha256_prefix"]
    write_manifest(model_repo, [bag])
    loaded = repo.load_demucs("tiny_ft")
    assert type(loaded).__name__ == "BagOfModels" and len(loaded.models) == 2 and loaded.weights == [[1.0, 0.0], [0.0, 1.0]]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_package_with_an_unknown_global_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.th"
    torch.save({"klass": _Payload(marker), "args": [], "kwargs": {}, "state": {}}, path)
    with pytest.raises(NsepError, match=r"refusing to load .*(posix|os)\.system"):
        repo.load_demucs(path)
    assert not marker.exists()
