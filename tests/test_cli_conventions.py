"""What every command promises, shown on ``nsep spectrogram``: exit codes, one-line errors, output shapes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BAD_FILES, error_lines, run_cli, tone, write

from nsep import __version__
from nsep.cli import common, hoist_global_flags
from nsep import spectrogram as engine

FIELDS = ["path", "output", "bands", "frames", "duration_s"]


def unreadable(path: Path) -> list[str] | None:
    """Make ``path`` unreadable; return the command prefix under which that holds (None: impossible here)."""
    write(path, tone(0.5, 16_000), 16_000)
    path.chmod(0)
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")  # root reads everything unless it drops the capability to
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else None


def test_bad_inputs_fail_one_line_each_while_the_batch_goes_on(tmp_path: Path) -> None:
    good = write(tmp_path / "in" / "good.wav", tone(1.0, 16_000), 16_000)
    bad = {str(make(tmp_path / "in" / name)): reason for name, (make, reason) in BAD_FILES.items()}
    prefix = unreadable(tmp_path / "in" / "locked.wav")
    if prefix is not None:
        bad[str(tmp_path / "in" / "locked.wav")] = "permission denied"
    out = tmp_path / "out"
    args = ["spectrogram", str(good), *bad, "-o", str(out), "--jsonl"]
    command = [*(prefix or []), sys.executable, "-m", "nsep", *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines == error_lines(proc.stderr) and len(lines) == len(bad), proc.stderr
    for path, reason in bad.items():
        [line] = [line for line in lines if line.startswith(f"nsep: error: {path}: ")]
        assert reason in line
    assert "Traceback" not in proc.stderr
    [record] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["path"] == str(good)
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


def test_no_color_on_a_terminal(tmp_path: Path) -> None:
    code, _, err = run_cli("spectrogram", str(tmp_path / "gone.wav"), "-o", str(tmp_path),
                           env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert code == 1 and not re.search(r"\x1b\[[0-9;]*m", err)
    assert f"nsep: error: {tmp_path / 'gone.wav'}: no such file" in err


@pytest.fixture
def two_files(make_audio) -> list[str]:
    return [str(make_audio("a.wav", seconds=1.0)), str(make_audio("b.flac", seconds=2.0, rate=22_050, channels=2))]


@pytest.mark.parametrize("fmt", ["--json", "--jsonl", "--csv", "table"])
def test_output_formats(cli, two_files: list[str], tmp_path: Path, fmt: str) -> None:
    code, out, err = cli("spectrogram", *two_files, "-o", str(tmp_path / "o"), "--npy", *([fmt] if fmt != "table" else []))
    assert (code, err) == (0, "")
    if fmt == "--json":
        records = json.loads(out)
    elif fmt == "--jsonl":
        records = [json.loads(line) for line in out.splitlines()]
    elif fmt == "--csv":
        assert out.splitlines()[0] == ",".join(FIELDS)
        records = list(csv.DictReader(io.StringIO(out)))
    else:
        assert out.split()[: len(FIELDS)] == FIELDS and out.count(".npy") == 2
        return
    assert [list(r) for r in records] == [FIELDS, FIELDS]
    assert [r["path"] for r in records] == two_files
    assert [r["output"] for r in records] == [str(tmp_path / "o" / "a.npy"), str(tmp_path / "o" / "b.npy")]
    assert [float(r["duration_s"]) for r in records] == [1.0, 2.0]


USAGE_ERRORS = {
    "two formats": (["--json", "--csv"], "choose one of --json, --jsonl, --csv"),
    "bad size": (["--size", "big"], "--size wants WIDTHxHEIGHT"),
    "hop too long": (["--hop", "4096"], "--hop must not exceed --n-fft"),
    "unknown scale": (["--scale", "bark"], "scale must be one of"),
    "fmax too high": (["--fmax", "9000"], "need 0 <= --fmin < --fmax"),
    "stdin twice": (["-", "--files-from", "-"], "can be given only once"),
    "missing list": (["--files-from", "nowhere.txt"], "nowhere.txt: cannot read path list"),
    "many to one file": (["extra.wav", "-o", "one.png"], "need --output to be a folder"),
    "wrong output type": (["-o", "a.jpg"], "--output a.jpg should end in .png, or name a folder"),
    "picture name for an array": (["-o", "a.png", "--npy"], "--output a.png should end in .npy"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_exit_2_with_one_line(cli, make_audio, tmp_path: Path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    extra, message = USAGE_ERRORS[case]
    make_audio("a.wav")
    code, out, err = cli("spectrogram", "a.wav", "-o", "pictures", *extra)
    assert code == 2 and out == ""
    assert err.splitlines() == error_lines(err) and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "pictures").exists()


def test_no_inputs_and_bad_options_are_usage_errors(cli, tmp_path: Path) -> None:
    assert cli("spectrogram", "-o", str(tmp_path))[0] == 2
    for args in (["spectrogram", "x.wav", "-o", "o", "--bogus"], ["no-such-command"], ["spectrogram", "x.wav"]):
        code, out, err = cli(*args)
        assert code == 2 and out == "" and "Traceback" not in err


def test_existing_outputs_are_kept_unless_overwrite(cli, make_audio, tmp_path: Path) -> None:
    source = str(make_audio("a.wav"))
    target = tmp_path / "a.npy"
    target.write_bytes(b"precious")
    code, out, err = cli("spectrogram", source, "-o", str(target), "--npy")
    assert code == 1 and error_lines(err) == [f"nsep: error: {target}: already exists (use --overwrite to replace it)"]
    assert target.read_bytes() == b"precious"
    assert cli("spectrogram", source, "-o", str(target), "--npy", "--overwrite")[0] == 0
    assert target.read_bytes().startswith(b"\x93NUMPY")


def test_same_names_in_a_folder_are_numbered(cli, tmp_path: Path) -> None:
    for folder in ("x", "y"):
        write(tmp_path / folder / "take.wav", tone(0.5, 16_000), 16_000)
    code, out, _ = cli("spectrogram", str(tmp_path / "x"), str(tmp_path / "y"), "-o", str(tmp_path / "o"), "--npy",
                       "--json")
    assert code == 0 and [Path(r["output"]).name for r in json.loads(out)] == ["take.npy", "take-2.npy"]


def test_globs_and_path_lists_from_stdin(cli, make_audio, tmp_path: Path, monkeypatch) -> None:
    for name in ("a.wav", "b.wav", "c.flac"):
        make_audio(name, seconds=0.5)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{tmp_path / 'c.flac'}\n{tmp_path / 'a.wav'}\n"))
    code, out, _ = cli("spectrogram", str(tmp_path / "*.wav"), "--files-from", "-", "-o", str(tmp_path / "o"),
                       "--npy", "--jsonl")
    assert code == 0
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["a.wav", "b.wav", "c.flac"]
    pattern = str(tmp_path / "*.mp3")
    code, _, err = cli("spectrogram", pattern, "-o", str(tmp_path / "o"), "--npy")
    assert code == 1 and err == f"nsep: error: {pattern}: no file matches this pattern\n"


def test_unexpected_errors_name_the_file_and_debug_shows_the_traceback(cli, make_audio, tmp_path: Path,
                                                                        monkeypatch) -> None:
    source = str(make_audio("a.wav"))

    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(engine, "compute", broken)
    code, _, err = cli("spectrogram", source, "-o", str(tmp_path / "o"))
    assert code == 1 and err == f"nsep: error: {source}: ValueError: boom (--debug shows more)\n"
    code, _, err = cli("--debug", "spectrogram", source, "-o", str(tmp_path / "o"))
    assert code == 1 and "Traceback" in err and err.endswith(f"nsep: error: {source}: ValueError: boom\n")
    monkeypatch.setenv("NSEP_DEBUG", "1")
    assert "Traceback" in cli("spectrogram", source, "-o", str(tmp_path / "o"))[2]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_quiet_keeps_results_and_version(cli, make_audio, tmp_path: Path) -> None:
    code, out, err = cli("-q", "spectrogram", str(make_audio("a.wav")), "-o", str(tmp_path / "a.npy"), "--npy",
                         "--jsonl")
    assert code == 0 and err == "" and json.loads(out)["frames"] == 32
    assert cli("--version") == (0, f"nsep {__version__}\n", "")
    code, out, err = cli("spectrogram", str(make_audio("b.wav")), "-o", str(tmp_path / "b.npy"), "--npy", "--jsonl", "-q")
    assert code == 0 and err == "" and json.loads(out)["frames"] == 32  # -q after the command works too
    assert common.settings.quiet
    assert cli("spectrogram", str(make_audio("c.wav")), "-o", str(tmp_path / "c.npy"), "--npy")[0] == 0
    assert not common.settings.quiet


def test_global_flags_after_the_command_move_to_the_front() -> None:
    assert hoist_global_flags(["classify", "a.wav", "-q", "--top-k", "2", "-vv"]) == \
        ["-q", "-vv", "classify", "a.wav", "--top-k", "2"]
    assert hoist_global_flags(["--debug", "detect", "--", "-q"]) == ["--debug", "detect", "--", "-q"]
    assert hoist_global_flags(["-q"]) == ["-q"]


def test_audio_from_stdin(tmp_path: Path) -> None:
    data = write(tmp_path / "a.wav", tone(1.5, 8_000), 8_000).read_bytes()
    code, out, err = run_cli("spectrogram", "-", "-o", str(tmp_path / "o"), "--npy", "--json", stdin=data)
    assert (code, err) == (0, "")
    [record] = json.loads(out)
    assert record["path"] == "-" and record["output"] == str(tmp_path / "o" / "stdin.npy")
    assert record["duration_s"] == 1.5


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_write_leaves_no_output(tmp_path: Path, sig: signal.Signals) -> None:
    """The command waits on stdin inside its atomic write; killed there, it must not leave the target."""
    out = tmp_path / "o"
    out.mkdir()
    child = subprocess.Popen([sys.executable, "-m", "nsep", "spectrogram", "-", "-o", str(out / "x.png")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdin.write(write(tmp_path / "a.wav", tone(1.0, 8_000), 8_000).read_bytes()[:5000])
    child.stdin.flush()
    deadline = time.monotonic() + 120
    while not list(out.iterdir()) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name.endswith(".part.png") for p in out.iterdir()] == [True]  # mid-write
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert not (out / "x.png").exists() and b"Traceback" not in err
    if sig == signal.SIGTERM:
        assert child.returncode == 128 + sig and list(out.iterdir()) == []  # the partial file is removed too
