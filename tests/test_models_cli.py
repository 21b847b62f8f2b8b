"""``nsep models``: list, info, download, verify, path, clear-cache against a real 127.0.0.1 server."""

from __future__ import annotations

import json
import os
import socket

from conftest import error_lines, run_cli
from model_server import model_repo, serve_model, server  # noqa: F401 (fixtures)

from nsep import repo


def test_list_shows_bundled_and_test_models_with_their_place(cli, server, model_repo):
    serve_model(server, model_repo)
    code, out, _ = cli("models", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["blob"] == {"name": "blob", "task": "classify", "default": False, "architecture": "cnn", "size": 200_000,
                            "where": "missing", "metric": "accuracy 0.5"}
    defaults = {r["task"]: r["name"] for r in rows.values() if r["default"]}  # one a task, the one it runs unasked
    assert defaults == {"classify": "classify-cnn-detect", "detect": "detect-cnn", "separate": "separate-unet-bilstm"}
    assert rows["htdemucs"]["size"] == 84_141_911 and rows["htdemucs_ft"]["size"] is None
    assert rows["separate-unet-bilstm"]["metric"].startswith("validation.valid.si_sdri ")  # the gain, not raw SI-SDR
    assert server.requests == []


def test_download_then_path_info_and_clear_cache(cli, server, model_repo):
    serve_model(server, model_repo)
    code, out, err = cli("models", "download", "blob", "--json")
    assert code == 0, err
    cached = str(repo.cache_dir() / "blob.pt")
    assert json.loads(out) == [{"name": "blob", "paths": [cached]}]
    assert cli("models", "path", "blob")[1] == cached + "\n"
    info = json.loads(cli("models", "info", "blob", "--json")[1])
    assert info["files"][0]["where"] == "cached" and info["sha256"] == info["files"][0]["expected_sha256"]
    code, out, _ = cli("models", "clear-cache", "blob", "--yes", "--json")
    assert code == 0 and [r["path"] for r in json.loads(out)] == [cached]
    assert not os.path.exists(cached)
    code, _, err = cli("models", "path", "blob")
    assert code == 1 and "nsep models download blob" in err


def test_verify_reports_a_tampered_cached_file(cli, server, model_repo):
    serve_model(server, model_repo)
    assert cli("models", "download", "blob")[0] == 0
    assert cli("models", "verify", "blob")[0] == 0
    cached = repo.cache_dir() / "blob.pt"
    data = bytearray(cached.read_bytes())
    data[1000] ^= 1
    cached.write_bytes(bytes(data))
    code, out, err = cli("models", "verify", "--json")
    assert code == 1
    assert [(r["name"], r["status"]) for r in json.loads(out) if r["status"] != "ok" and r["where"] != "missing"] == [
        ("blob", "MISMATCH")]
    assert len(error_lines(err)) == 1 and "model blob" in err and "tampered" in err


def test_a_missing_file_on_the_server_is_one_line_and_exit_1(cli, server, model_repo):
    serve_model(server, model_repo)
    del server.files["blob.pt"]
    code, out, err = cli("models", "download", "blob")
    assert code == 1 and out == ""
    assert error_lines(err) == [f"nsep: error: model blob: cannot download {server.url('blob.pt')}: HTTP 404 Not Found"]


def test_a_server_that_is_down_is_one_line_and_exit_1(server, model_repo):
    serve_model(server, model_repo)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/blob.pt"
    manifest = json.loads((model_repo / "manifest.json").read_text())
    manifest["models"][0]["url"] = url
    (model_repo / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli("models", "download", "blob", "--repo", str(model_repo))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 2  # the "downloading" note, then the error
    assert error_lines(err) == [f"nsep: error: model blob: cannot download {url}: connection refused "
                                "(is the server up? behind a proxy, set HTTPS_PROXY)"]


def test_unknown_model_and_clear_cache_without_yes_are_usage_errors(cli, model_repo):
    code, _, err = cli("models", "info", "nope")
    assert code == 2 and "unknown model 'nope'" in err
    (model_repo.parent / "cache" / "models").mkdir(parents=True)
    (model_repo.parent / "cache" / "models" / "x.pt").write_bytes(b"x")
    code, _, err = cli("models", "clear-cache")
    assert code == 2 and "--yes" in err
