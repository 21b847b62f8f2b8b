"""Rendering notes with the Synthesis ToolKit's ``stk-demo`` (Debian: stk) into a note bank.

Without stk-demo these tests fail, they never skip: scripts/test.sh installs it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from nsep.data import stk
from nsep.data.nsynth import load_bank
from nsep.data.plan import RenderConfig
from nsep.errors import UsageError
from nsep.taxonomy import classify_program

CONFIG = RenderConfig(held=0.5, release=0.25, velocities=(64, 127))
VOICES = (stk.Voice("Clarinet", 71, (60, 62)), stk.Voice("Plucked", 24, (45, 46), sustained=False),
          stk.Voice("Bowed", 40, (60, 61), ((2, 90),)))


def test_every_voice_is_labelled_with_a_general_midi_program_of_a_family():
    for voice in stk.VOICES:
        found = classify_program(voice.program)
        assert found is not None and voice.family == found.family
        assert voice.pitches[0] <= voice.pitches[1]
    score = stk.score(VOICES[2], 60, 100, 3.0, 1.0)
    assert score.splitlines() == ["NoteOn 0.0 1 60 100", "ControlChange 0.0 1 2 90", "NoteOff 3.0 1 60 64",
                                  "NoteOn 1.0 1 60 0"]


def test_render_writes_a_labelled_bank_and_resumes(tmp_path):
    summary = stk.render(tmp_path / "stk", CONFIG, workers=2, voices=VOICES)
    assert summary.planned == 14 and summary.rendered + summary.silent == 14 and summary.rendered >= 12
    examples = load_bank([str(tmp_path / "stk")])
    assert len(examples) == summary.rendered
    families = {e.instrument_family_str for e in examples}
    assert families == {"reed", "guitar", "string"}
    assert {e.instrument_source_str for e in examples} == {"synthetic"}
    records = json.loads((tmp_path / "stk" / "examples.json").read_text())
    assert {r["program"] for r in records.values()} == {71, 24, 40}
    assert {r["soundfont"] for r in records.values()} == {"stk:Clarinet", "stk:Plucked", "stk:Bowed"}
    for name in list(records)[:3]:
        audio, rate = sf.read(tmp_path / "stk" / "audio" / f"{name}.wav")
        assert rate == 16_000 and audio.shape == (CONFIG.frames,)
        assert 0.85 < np.abs(audio).max() < 0.95  # peak-normalised
    again = stk.render(tmp_path / "stk", CONFIG, workers=1, voices=VOICES)
    assert again.skipped == summary.rendered and again.rendered == 0


def test_a_sustained_voice_that_stops_speaking_is_dropped():
    rate = CONFIG.sample_rate
    attack_only = np.zeros(CONFIG.frames, dtype=np.float32)
    attack_only[: rate // 10] = 0.5 * np.sin(np.arange(rate // 10) * 0.3)
    assert not stk.sounds(attack_only, sustained=True, config=CONFIG)
    assert stk.sounds(attack_only, sustained=False, config=CONFIG)  # a plucked note may decay
    assert not stk.sounds(np.zeros(CONFIG.frames, dtype=np.float32), sustained=False, config=CONFIG)


def test_missing_stk_demo_is_a_clear_usage_error(tmp_path):
    with pytest.raises(UsageError, match="apt-get install stk"):
        stk.render(tmp_path / "none", CONFIG, voices=VOICES, binary="no-such-stk-demo")


def test_data_stk_command_renders_the_chosen_families(tmp_path, cli):
    code, out, err = cli("data", "stk", "-o", str(tmp_path / "bank"), "--families", "reed", "--velocities", "127",
                         "--held", "0.3", "--release", "0.1", "--json")
    assert code == 0, err
    record, = json.loads(out)
    assert record["instruments"] == sum(v.family == "reed" for v in stk.VOICES) and record["rendered"] > 0
