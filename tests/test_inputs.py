"""Input expansion: files, folders, globs, path lists and stdin, de-duplicated in a stable order."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from nsep import inputs
from nsep.errors import UsageError


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of audio and non-audio files; the working directory is set to it."""
    for name in ("b.wav", "a.FLAC", "notes.txt", "sub/c.mp3", "sub/deeper/d.ogg", "sub/e.json", "z.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_folder_gives_its_audio_files_recursively_in_sorted_order(tree: Path) -> None:
    assert inputs.expand(["."]) == ["a.FLAC", "b.wav", "sub/c.mp3", "sub/deeper/d.ogg", "z.wav"]
    assert inputs.expand([str(tree / "sub")]) == [str(tree / "sub/c.mp3"), str(tree / "sub/deeper/d.ogg")]


def test_globs_are_expanded_sorted_and_recursive(tree: Path) -> None:
    assert inputs.expand(["*.wav"]) == ["b.wav", "z.wav"]
    assert inputs.expand(["**/*.ogg"]) == ["sub/deeper/d.ogg"]
    assert inputs.expand(["su?"]) == ["sub/c.mp3", "sub/deeper/d.ogg"]  # a glob that matches a folder
    assert inputs.expand([str(tree / "[ab].*")]) == [str(tree / "a.FLAC"), str(tree / "b.wav")]


def test_nothing_matched_and_missing_paths_are_kept_to_be_reported(tree: Path) -> None:
    assert inputs.expand(["*.aiff", "gone.wav", "notes.txt"]) == ["*.aiff", "gone.wav", "notes.txt"]


def test_a_file_named_like_a_glob_is_taken_literally(tree: Path) -> None:
    (tree / "take[1].wav").write_bytes(b"x")
    assert inputs.expand(["take[1].wav"]) == ["take[1].wav"]


def test_duplicates_are_dropped_keeping_the_first_place(tree: Path) -> None:
    given = ["z.wav", ".", "./b.wav", str(tree / "z.wav"), "sub/../b.wav", "*.wav"]
    assert inputs.expand(given) == ["z.wav", "a.FLAC", "b.wav", "sub/c.mp3", "sub/deeper/d.ogg"]


def test_a_symlink_and_its_target_are_one_input(tree: Path) -> None:
    os.symlink(tree / "b.wav", tree / "link.wav")
    assert inputs.expand(["b.wav", "link.wav"]) == ["b.wav"]


def test_files_from_a_list_with_comments_and_blank_lines(tree: Path) -> None:
    (tree / "list.txt").write_text("# my files\nz.wav\n\n  sub  \n   # indented comment\nb.wav\n")
    assert inputs.expand(["a.FLAC"], files_from="list.txt") == ["a.FLAC", "z.wav", "sub/c.mp3",
                                                                  "sub/deeper/d.ogg", "b.wav"]


def test_files_from_stdin(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("b.wav\nsub/c.mp3\nb.wav\n"))
    assert inputs.expand([], files_from="-") == ["b.wav", "sub/c.mp3"]


def test_stdin_is_one_input_that_can_be_given_once(tree: Path) -> None:
    assert inputs.expand(["b.wav", "-"]) == ["b.wav", "-"]
    with pytest.raises(UsageError, match="only once"):
        inputs.expand(["-", "b.wav", "-"])
    with pytest.raises(UsageError, match="only once"):
        inputs.expand(["-"], files_from="-")


def test_an_unreadable_list_is_a_usage_error(tree: Path) -> None:
    with pytest.raises(UsageError, match="missing.txt: cannot read path list"):
        inputs.expand([], files_from="missing.txt")
