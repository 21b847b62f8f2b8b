"""SoundFonts: list their presets (read from the file) and render notes with libfluidsynth via ctypes.

Rendering is deterministic: ``fluid_synth_process`` renders float samples without dither, and
every note starts from the same state whatever was played before. A voice slot keeps some state
from the last note that used it (the first block of the next note differs; so does the first
note of a new synth), so each note is preceded by a one-block primer of the same note, and every
note ends with all sounds off and a block of silence that frees the killed voices. Notes render
a whole number of FluidSynth's 64-frame blocks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nsep.errors import InputError, NsepError

BLOCK = 64  # FluidSynth renders in blocks of this many frames
_LIBRARY_NAMES = ("libfluidsynth.so.3", "libfluidsynth.so.2")
_QUIET_LOG_LEVELS = (2, 3, 4)  # FLUID_WARN, FLUID_INFO, FLUID_DBG
_MAX_FLUSH_BLOCKS = 256
# Records of a SoundFont's pdta chunk and the generators nsep reads (also used to write fonts: gus.py)
PHDR_RECORD = struct.Struct("<20sHHHIII")  # name, program, bank, first bag, library, genre, morphology
BAG_RECORD = struct.Struct("<HH")  # pbag/ibag: first generator, first modulator
GEN_RECORD = struct.Struct("<HH")  # pgen/igen: operator, amount
INST_RECORD = struct.Struct("<20sH")  # name, first bag
SHDR_RECORD = struct.Struct("<20sIIIIIBbHH")  # name, start, end, loop start, loop end, rate, key, cents, link, type
GEN_INSTRUMENT, GEN_KEY_RANGE, GEN_SAMPLE_ID = 41, 43, 53
_COMPRESSED = 0x10  # sampleType bit of sf3's Ogg-compressed samples


@dataclass(frozen=True)
class Preset:
    """One preset of a SoundFont: its bank, program number and name."""

    bank: int
    program: int
    name: str


def _chunks(data: bytes, start: int, end: int):
    """(id, offset of body, size) of the RIFF chunks between ``start`` and ``end``."""
    position = start
    while position + 8 <= end:
        chunk_id, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        yield chunk_id, position + 8, size
        position += 8 + size + (size & 1)


def presets(path: str | Path) -> list[Preset]:
    """The presets a SoundFont (.sf2 or .sf3) holds, read from its ``phdr`` chunk without loading samples."""
    path = Path(path)
    return _parse_pdta(path, _pdta(path))


def _lists(path: Path, handle: BinaryIO) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset of the body, body size) of each top-level LIST chunk: INFO, sdta (samples), pdta."""
    header = handle.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise InputError(str(path), "not a SoundFont (no RIFF sfbk header)")
    end = 8 + struct.unpack_from("<I", header, 4)[0]
    position = 12
    while position + 12 <= end:
        handle.seek(position)
        head = handle.read(12)
        size = struct.unpack_from("<I", head, 4)[0]
        if head[:4] == b"LIST":
            yield head[8:12], position + 12, size - 4
        position += 8 + size
        if size & 1:  # RIFF pads odd chunks, but some converters (sf3convert) do not
            handle.seek(position)
            position += handle.read(4) != b"LIST"


def _pdta(path: Path) -> bytes:
    """The body of a SoundFont's ``pdta`` list (its presets, instruments and sample headers)."""
    try:
        with open(path, "rb") as handle:
            for kind, offset, size in _lists(path, handle):
                if kind == b"pdta":
                    handle.seek(offset)
                    return handle.read(size)
    except OSError as err:
        raise InputError(str(path), f"cannot read SoundFont ({err.strerror})") from None
    raise InputError(str(path), "not a SoundFont (no preset data)")


def _sample_data_offset(path: Path, handle: BinaryIO) -> int | None:
    """Where the 16-bit sample points (the ``smpl`` chunk of the ``sdta`` list) begin in the file."""
    for kind, offset, size in _lists(path, handle):
        if kind == b"sdta":
            inner = offset
            while inner + 8 <= offset + size:
                handle.seek(inner)
                chunk = handle.read(8)
                if chunk[:4] == b"smpl":
                    return inner + 8
                inner += 8 + struct.unpack_from("<I", chunk, 4)[0]
    return None


def _records(path: Path, body: bytes, chunk: bytes, record: struct.Struct) -> list[tuple]:
    """The records of one pdta sub-chunk, without its terminal record."""
    for chunk_id, offset, size in _chunks(body, 0, len(body)):
        if chunk_id == chunk:
            count = size // record.size - 1
            return [record.unpack_from(body, offset + i * record.size) for i in range(count)]
    raise InputError(str(path), f"not a SoundFont (no {chunk.decode()} chunk)")


def _name(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1").strip()


def _parse_pdta(path: Path, body: bytes) -> list[Preset]:
    found = {Preset(bank, program, _name(name)) for name, program, bank, *_ in _records(path, body, b"phdr", PHDR_RECORD)}
    return sorted(found, key=lambda p: (p.bank, p.program))


def _zones(headers: list[tuple], first_bag: int, bags: list[tuple], gens: list[tuple],
           operator: int) -> list[list[tuple[range, int]]]:
    """For each preset (instrument) header, its zones as (key range, amount of ``operator``).

    Zones without that generator (global zones) are left out.
    """
    zones = []
    for i, header in enumerate(headers):
        stop = headers[i + 1][first_bag] if i + 1 < len(headers) else len(bags)
        found = []
        for bag in range(header[first_bag], min(stop, len(bags))):
            gen_stop = bags[bag + 1][0] if bag + 1 < len(bags) else len(gens)
            keys, target = range(128), None
            for op, amount in gens[bags[bag][0] : gen_stop]:
                if op == GEN_KEY_RANGE:
                    keys = range(amount & 0xFF, (amount >> 8) + 1)
                elif op == operator:
                    target = amount
            if target is not None:
                found.append((keys, target))
        zones.append(found)
    return zones


def sample_signatures(path: str | Path) -> dict[tuple[int, int], dict[int, frozenset[tuple]]]:
    """For each (bank, program) preset and each key it plays, signatures of the samples it sounds.

    A sample's signatures are its name (case-folded) and, for uncompressed (.sf2) samples, its
    length, loop length and sample rate, and a digest of its sample points: two fonts that share a
    signature very likely share a recording, renamed, re-looped or re-pitched or not (sf3's
    compressed samples are matched by name only).
    """
    path = Path(path)
    body = _pdta(path)
    phdr = _records(path, body, b"phdr", PHDR_RECORD)
    inst = _records(path, body, b"inst", INST_RECORD)
    shdr = _records(path, body, b"shdr", SHDR_RECORD)
    preset_zones = _zones(phdr, 3, _records(path, body, b"pbag", BAG_RECORD),
                          _records(path, body, b"pgen", GEN_RECORD), GEN_INSTRUMENT)
    instrument_zones = _zones(inst, 1, _records(path, body, b"ibag", BAG_RECORD),
                              _records(path, body, b"igen", GEN_RECORD), GEN_SAMPLE_ID)

    result: dict[tuple[int, int], dict[int, frozenset[tuple]]] = {}
    with open(path, "rb") as handle:
        data_offset = _sample_data_offset(path, handle)

        @functools.cache
        def signatures(sample: int) -> frozenset[tuple]:
            name, start, end, loop_start, loop_end, rate, _, _, _, kind = shdr[sample]
            found = {("name", _name(name).casefold())}
            if not kind & _COMPRESSED:
                found.add(("frames", end - start, loop_end - loop_start, rate))
                if data_offset is not None and end > start:
                    handle.seek(data_offset + 2 * start)
                    points = handle.read(2 * (end - start))
                    if points.strip(b"\0"):  # silent samples say nothing of where a recording came from
                        found.add(("points", hashlib.blake2b(points, digest_size=16).hexdigest()))
            return frozenset(found)

        for (_, program, bank, *_), zones in zip(phdr, preset_zones):
            keys: dict[int, set[tuple]] = {}
            for preset_keys, instrument in zones:
                for sample_keys, sample in instrument_zones[instrument] if instrument < len(inst) else ():
                    if sample < len(shdr):
                        for key in set(preset_keys) & set(sample_keys):
                            keys.setdefault(key, set()).update(signatures(sample))
            result[(bank, program)] = {key: frozenset(value) for key, value in keys.items()}
    return result


def shared_keys(path: str | Path, others: Iterable[str | Path]) -> dict[tuple[int, int], frozenset[int]]:
    """For each (bank, program) preset of ``path``, the keys that sound a sample found in any of ``others``."""
    taken: set[tuple] = set()
    for other in others:
        for keys in sample_signatures(other).values():
            taken.update(*keys.values())
    shared = {}
    for preset, keys in sample_signatures(path).items():
        hits = frozenset(key for key, found in keys.items() if found & taken)
        if hits:
            shared[preset] = hits
    return shared


@functools.cache
def library() -> ctypes.CDLL:
    """libfluidsynth, with the argument types of the functions used here declared."""
    names = [*_LIBRARY_NAMES, ctypes.util.find_library("fluidsynth")]
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise NsepError("libfluidsynth not found (Debian/Ubuntu: apt-get install libfluidsynth3; macOS: brew install fluid-synth)")
    p, i, d, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    signatures = {
        "new_fluid_settings": (p, []),
        "delete_fluid_settings": (None, [p]),
        "fluid_settings_setnum": (i, [p, s, d]),
        "fluid_settings_setint": (i, [p, s, i]),
        "new_fluid_synth": (p, [p]),
        "delete_fluid_synth": (None, [p]),
        "fluid_synth_sfload": (i, [p, s, i]),
        "fluid_synth_program_select": (i, [p, i, i, i, i]),
        "fluid_synth_noteon": (i, [p, i, i, i]),
        "fluid_synth_noteoff": (i, [p, i, i]),
        "fluid_synth_all_sounds_off": (i, [p, i]),
        "fluid_synth_get_active_voice_count": (i, [p]),
        "fluid_synth_process": (i, [p, i, i, p, i, p]),
        "fluid_set_log_function": (p, [i, p, p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    for level in _QUIET_LOG_LEVELS:
        lib.fluid_set_log_function(level, None, None)
    return lib


def single_threaded_openmp() -> None:
    """Keep this process's OpenMP to one thread; call it first thing in a forked worker.

    Debian's libfluidsynth loads samples in OpenMP parallel regions. In a process forked from one
    that already ran OpenMP (torch does), the inherited thread pool has no threads and the first
    parallel region waits for them forever.
    """
    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(1)
    except (OSError, AttributeError):
        pass  # no GNU OpenMP here: nothing can hang


class Synth:
    """One FluidSynth instance rendering single notes offline: no reverb, no chorus, mono float32 out."""

    def __init__(self, sample_rate: int, polyphony: int = 256):
        self._lib = library()
        self.sample_rate = sample_rate
        self._settings = self._lib.new_fluid_settings()
        for key, value in (("synth.sample-rate", sample_rate), ("synth.gain", 1.0)):
            self._lib.fluid_settings_setnum(self._settings, key.encode(), float(value))
        for key, value in (("synth.reverb.active", 0), ("synth.chorus.active", 0), ("synth.polyphony", polyphony),
                           ("synth.lock-memory", 0)):
            self._lib.fluid_settings_setint(self._settings, key.encode(), value)
        self._synth = self._lib.new_fluid_synth(self._settings)
        if not self._synth:
            self._lib.delete_fluid_settings(self._settings)
            raise NsepError(f"FluidSynth could not start at {sample_rate} Hz")
        self._fonts: dict[str, int] = {}

    def load(self, path: str | Path) -> int:
        """Load a SoundFont once; return its FluidSynth id."""
        key = str(Path(path).resolve())
        if key not in self._fonts:
            font_id = self._lib.fluid_synth_sfload(self._synth, key.encode(), 0)
            if font_id < 0:
                raise InputError(str(path), "FluidSynth cannot load this SoundFont")
            self._fonts[key] = font_id
        return self._fonts[key]

    def select(self, channel: int, font_id: int, bank: int, program: int) -> None:
        if self._lib.fluid_synth_program_select(self._synth, channel, font_id, bank, program) != 0:
            raise NsepError(f"SoundFont {font_id} has no preset {bank}:{program}")

    def _add(self, mono: np.ndarray) -> None:
        """Render ``len(mono)`` frames, adding left and right into the one float32 buffer."""
        buffers = (ctypes.c_void_p * 2)(mono.ctypes.data, mono.ctypes.data)
        self._lib.fluid_synth_process(self._synth, len(mono), 0, None, 2, buffers)

    def _flush(self, channel: int, rendered: int) -> None:
        """Silence the synth and free its voices, keeping the frame count a whole number of blocks."""
        self._lib.fluid_synth_all_sounds_off(self._synth, channel)
        frames = BLOCK + (-rendered) % BLOCK
        for _ in range(_MAX_FLUSH_BLOCKS):
            self._add(np.zeros(frames, dtype=np.float32))
            if self._lib.fluid_synth_get_active_voice_count(self._synth) == 0:
                return
            frames = BLOCK
        raise NsepError("FluidSynth voices did not stop")

    def note(self, channel: int, key: int, velocity: int, held: int, total: int) -> np.ndarray:
        """Play ``key`` for ``held`` frames, release, and return ``total`` frames of mono float32."""
        self._lib.fluid_synth_noteon(self._synth, channel, key, velocity)  # the primer
        self._add(np.zeros(BLOCK, dtype=np.float32))
        self._flush(channel, BLOCK)
        out = np.zeros(total, dtype=np.float32)
        self._lib.fluid_synth_noteon(self._synth, channel, key, velocity)
        self._add(out[:held])
        self._lib.fluid_synth_noteoff(self._synth, channel, key)
        self._add(out[held:])
        self._flush(channel, total)
        out *= 0.5
        return out

    def close(self) -> None:
        if self._synth:
            self._lib.delete_fluid_synth(self._synth)
            self._lib.delete_fluid_settings(self._settings)
            self._synth = self._settings = None

    def __enter__(self) -> Synth:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
