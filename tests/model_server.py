"""A real HTTP server on 127.0.0.1 for download tests, and a throw-away model repository around it.

The server serves files from memory with HTTP Range support and can, on demand, corrupt bytes, cut
a response halfway, stall before answering, or throttle; it records every request it sees.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nsep import download, repo


@dataclass
class Faults:
    corrupt: bool = False  # flip the first byte of every body
    cut_next: int = 0  # this many coming responses stop halfway through the body
    stall_s: float = 0.0  # wait before answering
    chunk_delay_s: float = 0.0  # wait after each 16 KiB sent


@dataclass
class ModelServer:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (file, Range header)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def full_gets(self, name: str) -> int:
        return sum(1 for file, byte_range in self.requests if file == name and byte_range is None)


class _Handler(BaseHTTPRequestHandler):
    state: ModelServer
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        name, byte_range, faults = self.path.lstrip("/"), self.headers.get("Range"), self.state.faults
        with self.lock:
            self.state.requests.append((name, byte_range))
            cut = faults.cut_next > 0
            faults.cut_next -= cut
        time.sleep(faults.stall_s)
        body = self.state.files.get(name)
        if body is None:
            self.send_error(404)
            return
        if faults.corrupt:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        start = int(match.group(1)) if byte_range and (match := re.fullmatch(r"bytes=(\d+)-", byte_range)) else 0
        if start >= len(body) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if cut:
            payload = payload[: len(payload) // 2]
        for offset in range(0, len(payload), 1 << 14):
            self.wfile.write(payload[offset : offset + (1 << 14)])
            time.sleep(faults.chunk_delay_s)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    state = ModelServer()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def model_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty model folder (NSEP_MODEL_REPO) and cache (NSEP_CACHE_DIR) in tmp; fast retries."""
    folder = tmp_path / "repo"
    folder.mkdir()
    write_manifest(folder, [])
    monkeypatch.setenv("NSEP_MODEL_REPO", str(folder))
    monkeypatch.setenv("NSEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NSEP_OFFLINE", raising=False)
    monkeypatch.delenv("NSEP_TIMEOUT", raising=False)
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    yield folder
    repo.set_repo(None)


def write_manifest(folder: Path, entries: list[dict[str, Any]]) -> None:
    (folder / "manifest.json").write_text(json.dumps({"models": entries}))


def file_entry(name: str, file: str, body: bytes, url: str | None, **fields: Any) -> dict[str, Any]:
    """A manifest entry for a one-file test model whose weights are ``body``."""
    return {"name": name, "task": "classify", "architecture": "cnn", "sample_rate": 16000, "channels": 1,
            "labels": ["a", "b"], "file": file, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
            "url": url, "metrics": {"accuracy": 0.5}, **fields}


def serve_model(server: ModelServer, folder: Path, size: int = 200_000, name: str = "blob") -> bytes:
    """Serve random weights as ``<name>.pt`` and list them in the repo folder's manifest."""
    body = hashlib.sha256(name.encode()).digest() * (size // 32)
    server.files[f"{name}.pt"] = body
    write_manifest(folder, [file_entry(name, f"{name}.pt", body, server.url(f"{name}.pt"))])
    return body
