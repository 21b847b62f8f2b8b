"""On-the-fly mixtures: exact stems, labels that match them, frame activity, the seed's protocol."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from test_nsynth import make_nsynth

from nsep.data import mixtures
from nsep.data.nsynth import load_bank, read_note
from nsep.taxonomy import FAMILIES

FAMILY_SET = ("bass", "guitar", "keyboard", "vocal", "drums")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Operations this small run far slower with torch's threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory):
    spec = [(family, "acoustic", inst, pitch, 100, set())
            for family in FAMILY_SET for inst in (0, 1) for pitch in range(40, 52)]
    return load_bank(make_nsynth(tmp_path_factory.mktemp("bank"), "train", spec))


def _loud(stems: torch.Tensor, hop: int, db: float = -60.0) -> torch.Tensor:
    frames = -(-stems.shape[-1] // hop)
    padded = torch.nn.functional.pad(stems.abs(), (0, frames * hop - stems.shape[-1]))
    return padded.view(stems.shape[0], frames, hop).amax(-1) >= 10 ** (db / 20)


@pytest.mark.parametrize("mode", mixtures.MODES)
def test_stems_sum_to_mix_and_labels_match(notes, mode):
    data = mixtures.dataset(notes, mode, 12, seed=1, k=(1, 4))
    for i in range(len(data)):
        item = data[i]
        assert item.mix.shape == (1, 64_000) and item.stems.shape == (len(FAMILIES), 64_000)
        assert torch.equal(item.stems.sum(0, keepdim=True), item.mix)
        assert torch.equal(item.presence, (item.stems.abs().amax(-1) >= mixtures.SILENCE).float())
        assert item.k == int(item.presence.sum()) and 1 <= item.k <= 4
        assert set(FAMILIES[j] for j in item.presence.nonzero().flatten()) <= set(FAMILY_SET)
        assert item.activity.shape == (len(FAMILIES), 125)
        assert torch.equal(item.activity.bool(), _loud(item.stems, 512))  # placed notes, where they sound
        assert float(item.mix.abs().max()) <= 1.0


@pytest.mark.parametrize("mode", mixtures.MODES)
def test_items_depend_only_on_seed_and_index(notes, mode):
    a = mixtures.dataset(notes, mode, 8, seed=5)
    b = mixtures.dataset(notes, mode, 8, seed=5, cache=True)
    later = [b[i] for i in (7, 3, 3)]
    assert all(torch.equal(a[i].stems, item.stems) for i, item in zip((7, 3, 3), later))
    c = mixtures.dataset(notes, mode, 8, seed=6)
    assert not all(torch.equal(a[i].mix, c[i].mix) for i in range(8))


def test_seed_mode_sums_whole_notes_at_unit_gain(notes):
    """Whole notes at t=0, unit gain; only a mix that would clip is scaled, stems with it."""
    whole = torch.from_numpy(np.stack([read_note(e) for e in notes]))
    unit = whole / whole.norm(dim=1, keepdim=True)
    data = mixtures.dataset(notes, "seed", 20, seed=0, k=(2, 3))
    for i in range(len(data)):
        item = data[i]
        assert item.k in (2, 3)
        rows = item.stems[item.presence > 0]
        sources = whole[(rows @ unit.T).argmax(1)]  # the note each stem is made of
        peak = float(sources.sum(0).abs().max())
        torch.testing.assert_close(rows, sources * (1.0 if peak <= 1 else 0.99 / peak), atol=1e-6, rtol=0)
        assert torch.all(item.activity[item.presence == 0] == 0)


def test_music_mode_enters_leaves_and_varies_gain(notes):
    data = mixtures.dataset(notes, "music", 40, seed=2, k=(1, 3), hop=256, gain_db=(-20.0, 0.0))
    late = early_end = 0
    peaks = []
    for i in range(len(data)):
        item = data[i]
        assert item.activity.shape == (len(FAMILIES), 250)
        for row in item.presence.nonzero().flatten():
            active = item.activity[row].nonzero().flatten()
            late += int(active[0]) > 0
            early_end += int(active[-1]) < 249
            peaks.append(float(item.stems[row].abs().max()))
    assert late and early_end
    assert max(peaks) / min(peaks) > 2  # gains spread over the dB range


def test_collate_and_bad_config(notes):
    data = mixtures.dataset(notes, "music", 3, families=("bass", "guitar"))
    mix, presence, activity, k = mixtures.collate([data[0], data[1], data[2]])
    assert mix.shape == (3, 64_000) and presence.shape == (3, 2) and activity.shape == (3, 2, 125)
    assert k.tolist() == presence.sum(1).int().tolist()
    mix, stems, presence = mixtures.collate_stems([data[0], data[1]])
    assert mix.shape == (2, 1, 64_000) and stems.shape == (2, 2, 64_000)
    with pytest.raises(ValueError):
        mixtures.dataset(notes, "chaos")
    with pytest.raises(ValueError):
        mixtures.dataset(notes, k=(0, 2))
    with pytest.raises(ValueError, match="no notes"):
        mixtures.dataset(notes, families=("flute",))
    with pytest.raises(ValueError, match="cover only 5"):  # a k no mixture of these notes can reach
        mixtures.dataset(notes, k=(6, 6))
    with pytest.raises(IndexError):
        data[3]
