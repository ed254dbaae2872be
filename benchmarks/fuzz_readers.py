"""Fuzz every reader and the artifact: mutated files may raise only the project's documented errors.

For each format a valid seed file is written by our writer, then mutated (bit flips, byte overwrites,
truncations, insertions, a huge 32-bit field, duplicated chunks) and read back. The outcome of each input
is ``ok`` (read), ``documented`` (one of ``DOCUMENTED``, whose message names the file) or a failure
(any other exception, or a documented one that does not name the file). The tally is printed as a
Markdown table; ``tests/test_fuzz.py`` runs a small, seeded share of it in the default suite and the
whole campaign in the slow group.

    python benchmarks/fuzz_readers.py --per-format 300 --seed 1 > docs/fuzz.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from neuro_agmm.artifact import ArtifactError  # noqa: E402
from neuro_agmm.data.cifar import CifarFormatError  # noqa: E402
from neuro_agmm.events import EventFileError, SensorSize, make_events, read_events  # noqa: E402
from neuro_agmm.events.types import sort_by_time  # noqa: E402
from hw_models.mapping.netx_rules import NetxRuleError  # noqa: E402

DOCUMENTED = (EventFileError, ArtifactError, CifarFormatError, NetxRuleError)


def _events(rng: np.random.Generator, n: int, w: int, h: int) -> np.ndarray:
    return sort_by_time(make_events(rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 200_000, n),
                                    rng.integers(0, 2, n)))


def seed_files(folder: Path, rng: np.random.Generator) -> dict[str, tuple[Path, Callable[[Path], object]]]:
    """One valid file per format and the reader to call on it."""
    from neuro_agmm.artifact import read_artifact, write_artifact
    from neuro_agmm.data.cifar import read_batch
    from neuro_agmm.events.aedat2 import write_aedat2
    from neuro_agmm.events.aedat3 import write_aedat3
    from neuro_agmm.events.aedat4 import write_aedat4
    from neuro_agmm.events.h5npz import write_event_file
    from neuro_agmm.events.nmnist import write_nmnist
    from neuro_agmm.events.prophesee import write_prophesee_dat, write_prophesee_raw
    from neuro_agmm.events.structured import write_structured_npy
    from neuro_agmm.events.tonic_npy import write_tonic_gesture_npy
    from hw_models.mapping.hardware_section import load_hardware, save_hardware
    from hw_models.mapping.netx import export_netx, import_netx
    from hw_models.mapping.netx_quantizer import quantize_for_netx
    import pickle

    sys.path.insert(0, str(ROOT / "tests"))
    from random_nets import random_artifact, random_int_network

    out: dict[str, tuple[Path, Callable[[Path], object]]] = {}
    ev34 = _events(rng, 300, 34, 34)
    ev128 = _events(rng, 300, 128, 128)
    out["nmnist.bin"] = (write_nmnist(folder / "a.bin", ev34), read_events)
    out["aedat2"] = (write_aedat2(folder / "a2.aedat", ev128), read_events)
    out["aedat3.1"] = (write_aedat3(folder / "a3.aedat", ev128, packet_size=100), read_events)
    out["aedat4"] = (write_aedat4(folder / "a.aedat4", ev128, SensorSize(128, 128, 2), packet_size=100), read_events)
    out["prophesee.dat"] = (write_prophesee_dat(folder / "a.dat", ev128, SensorSize(128, 128, 2)), read_events)
    out["evt2.raw"] = (write_prophesee_raw(folder / "e2.raw", ev128, SensorSize(128, 128, 2), "evt2"), read_events)
    out["evt3.raw"] = (write_prophesee_raw(folder / "e3.raw", ev128, SensorSize(128, 128, 2), "evt3"), read_events)
    out["tonic.npy"] = (write_structured_npy(folder / "s.npy", ev34), read_events)
    out["gesture.npy"] = (write_tonic_gesture_npy(folder / "1.npy", ev128), read_events)
    out["events.npz"] = (write_event_file(folder / "e.npz", ev34, SensorSize(34, 34, 2)), read_events)
    out["events.h5"] = (write_event_file(folder / "e.h5", ev34, SensorSize(34, 34, 2)), read_events)
    art = random_artifact(rng, hidden=(8,), n_in=12)
    out["artifact.h5"] = (write_artifact(art, folder / "m.h5"), read_artifact)
    net = random_int_network(rng, "dense", depth=2)
    hw = folder / "hw.h5"
    save_hardware(hw, net)
    out["hardware.h5"] = (hw, load_hardware)
    from hw_models.backends.emulator import random_residual_network
    from random_nets import residual_artifact

    out["residual.h5"] = (write_artifact(residual_artifact(), folder / "r.h5"), read_artifact)  # format 3 DAG
    hw_r = folder / "hw_r.h5"
    save_hardware(hw_r, random_residual_network(rng))
    out["hardware_residual.h5"] = (hw_r, load_hardware)
    netx_net, _ = quantize_for_netx(art)
    out["netx.h5"] = (export_netx(netx_net, folder / "n.netx.h5").path, import_netx)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8), b"labels": [1, 2, 3, 4]}, f)
    out["cifar.pickle"] = (folder / "data_batch_1", read_batch)
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of ``data``."""
    b = bytearray(data)
    kind = int(rng.integers(0, 6))
    if not b:
        return bytes(rng.integers(0, 256, 16, dtype=np.uint8))
    i = int(rng.integers(0, len(b)))
    if kind == 0:  # flip a few bits
        for _ in range(int(rng.integers(1, 9))):
            j = int(rng.integers(0, len(b)))
            b[j] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncate
        b = b[:i]
    elif kind == 2:  # overwrite a run with random bytes
        n = int(rng.integers(1, 17))
        b[i:i + n] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    elif kind == 3:  # a huge 32-bit field (declared lengths, counts)
        b[i:i + 4] = int(rng.choice([0x7FFFFFFF, 0xFFFFFFFF, 0x40000000, 0x80000000])).to_bytes(4, "little")
    elif kind == 4:  # insert random bytes
        b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
    else:  # duplicate a chunk
        j = int(rng.integers(i, min(len(b), i + 64) + 1))
        b[j:j] = b[i:j]
    return bytes(b)


HANG_S = 10.0  # a read that takes longer is reported as a hang


def _outcome(reader, target: Path) -> str:
    """Read ``target``; ``"ok"``, ``"documented"``, ``"documented, file not named"`` or ``"undocumented X: msg"``."""
    try:
        reader(target)
        return "ok"
    except DOCUMENTED as e:
        return "documented" if str(target) in str(e) or target.name in str(e) else f"documented, file not named: {e}"
    except Exception as e:  # noqa: BLE001 - exactly what the campaign looks for
        return f"undocumented {type(e).__name__}: {str(e)[:200]}"


def _isolated(reader, target: Path) -> str:
    """``_outcome`` in a forked child under a timeout: libhdf5 can loop forever inside C on a damaged
    file (seen on a corrupt global heap), which no in-process guard can interrupt."""
    import os

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            msg = _outcome(reader, target)
        except BaseException as e:  # noqa: BLE001
            msg = f"undocumented {type(e).__name__}: {e}"
        os.write(w, msg.encode(errors="replace")[:4000])
        os._exit(0)
    os.close(w)
    from neuro_agmm.artifact.guard import wait_or_kill

    if wait_or_kill(pid, HANG_S) is None:
        os.close(r)
        return f"hang (> {HANG_S:.0f} s)"
    with os.fdopen(r, "rb") as f:
        return f.read().decode(errors="replace") or "undocumented crash (no result)"


def campaign(per_format: int, seed: int, formats: list[str] | None = None) -> tuple[dict, list[str]]:
    """Tally ``{format: Counter(outcome)}`` and the failures (format, mutation index, exception)."""
    import neuro_agmm.artifact.guard as guard

    guard.READ_TIMEOUT_S = min(guard.READ_TIMEOUT_S, HANG_S / 2)  # the readers' own libhdf5 guard acts first
    rng = np.random.default_rng(seed)
    tally: dict[str, Counter] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fuzz_") as tmp:
        folder = Path(tmp)
        seeds = seed_files(folder, rng)
        for name, (path, reader) in seeds.items():
            if formats and name not in formats:
                continue
            original = path.read_bytes()
            counts: Counter = Counter()
            for k in range(per_format):
                target = path.with_name(f"fuzz_{k}_{path.name}")
                target.write_bytes(mutate(original, rng))
                try:
                    outcome = _isolated(reader, target)
                finally:
                    target.unlink(missing_ok=True)
                kind = outcome.split(":")[0]
                counts[kind] += 1
                if kind not in ("ok", "documented"):
                    failures.append(f"{name} #{k}: {outcome}")
            tally[name] = counts
    return tally, failures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-format", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    tally, failures = campaign(args.per_format, args.seed)
    total = sum(sum(c.values()) for c in tally.values())
    print(f"# Reader fuzzing: {total} mutated files, seed {args.seed}\n")
    print(f"`python benchmarks/fuzz_readers.py --per-format {args.per_format} --seed {args.seed}` "
          f"({time.perf_counter() - t0:.0f} s). Outcomes per format: `ok` (read; the mutation kept the file "
          f"valid), `documented` (one of {', '.join(e.__name__ for e in DOCUMENTED)}, naming the file), "
          f"anything else is a failure.\n")
    keys = sorted({k for c in tally.values() for k in c})
    print("| format | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, c in tally.items():
        print(f"| {name} | " + " | ".join(str(c.get(k, 0)) for k in keys) + " |")
    print(f"\nfailures: {len(failures)}")
    for f in failures[:50]:
        print(f"- {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
