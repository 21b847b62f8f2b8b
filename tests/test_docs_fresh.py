"""The generated completions and man page match the app; completion works through the entry point."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_completions_and_man_page_are_fresh() -> None:
    assert gen_docs().main(["--check"]) == 0, "stale: run python scripts/gen_docs.py and commit the result"


def test_man_page_documents_every_command_and_the_conventions() -> None:
    page = (ROOT / "man" / "nsep.1").read_text()
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT", "EXIT STATUS"):
        assert f".SH {heading}\n" in page
    for variable in ("NO_COLOR", "NSEP_CACHE_DIR", "NSEP_MODEL_REPO", "NSEP_OFFLINE", "NSEP_DEBUG"):
        assert f".B {variable}\n" in page
    assert '.SS "nsep spectrogram [OPTIONS]' in page and "\\fB\\-o, \\-\\-output <path>\\fR" in page


def test_the_entry_point_prints_the_committed_completion_script() -> None:
    nsep = shutil.which("nsep", path=str(Path(sys.executable).parent)) or shutil.which("nsep")
    if nsep is None:
        pytest.skip("the nsep entry point is not installed")
    proc = subprocess.run([nsep], env={**os.environ, "_NSEP_COMPLETE": "source_bash"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() + "\n" == (ROOT / "completions" / "nsep.bash").read_text()


@pytest.mark.parametrize("words,expected", [("nsep spec", "spectrogram"), ("nsep spectrogram --n-", "--n-fft")])
def test_bash_completion_answers(words: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    module = gen_docs()
    monkeypatch.setenv("_NSEP_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - 1))
    with pytest.raises(SystemExit):
        module.typer.main.get_command(module.app).main(args=[], prog_name="nsep", complete_var="_NSEP_COMPLETE")
    assert expected in capsys.readouterr().out.split()
