"""``python -m neuro_agmm.data``: prepare (bin and cache) event datasets, and list what is available.

* ``prepare --dataset NAME --root datasets --time-steps T [--binning time|count]
  [--downsample F] [--clip C] [--limit N]``: reads the original recordings (layouts in
  ``datasets/<name>/README.md``), bins them into ``T`` count frames and writes
  ``datasets/<name>/cache/<name>_T<T>_..._v2/`` (memory-mappable ``.npy`` files) atomically, with a progress bar. For
  ``digits-dvs`` it also writes a few test recordings as event files under
  ``datasets/digits-dvs/samples/<label>/`` (inputs for ``python -m neuro_agmm.infer``).
* ``info [--root datasets]``: per dataset, whether its files / caches are present.

Thin layer over ``neuro_agmm.data.event_datasets``; user errors exit with code 2 and one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from neuro_agmm.data.event_datasets import EVENT_DATASETS


def write_digits_samples(root: str | Path, n: int = 10) -> list[Path]:
    """The first ``n`` digits-dvs test recordings as ``.npz`` event files under ``<root>/digits-dvs/samples``."""
    from neuro_agmm.data.event_datasets import open_event_dataset
    from neuro_agmm.events.h5npz import write_event_file

    ds = open_event_dataset("digits-dvs", root, "test")
    out = []
    for i in range(min(n, len(ds))):
        ev, label = ds[i]
        out.append(write_event_file(Path(root) / "digits-dvs" / "samples" / str(label) / f"test_{i:03d}.npz", ev,
                                    ds.sensor_size))
    return out


def _info(root: Path) -> None:
    from neuro_agmm.data.event_datasets import DatasetNotFoundError, open_event_dataset

    print(f"| dataset | train recordings | test recordings | caches | ({root}) |")
    print("|---|---|---|---|---|")
    for name in EVENT_DATASETS:
        if name == "digits-dvs":
            counts = "1437 (simulated) | 360 (simulated)"
        else:
            try:
                counts = " | ".join(str(len(open_event_dataset(name, root, s))) for s in ("train", "test"))
            except (DatasetNotFoundError, ValueError) as e:
                counts = f"missing | missing ({str(e).split(';')[0]})"
        cdir = root / name / "cache"
        caches = sorted(p.parent.name for p in cdir.glob("*/info.json")) if cdir.is_dir() else []
        print(f"| {name} | {counts} | {', '.join(caches) or '-'} | |")


def main(argv: Optional[list[str]] = None) -> int:
    from neuro_agmm import cli

    ap = cli.parser("data", "Event datasets: bin the original recordings into cached count frames (prepare) or "
                            "show what is present (info).",
                    ["python -m neuro_agmm.data prepare --dataset digits-dvs -T 8",
                     "python -m neuro_agmm.data prepare --dataset nmnist --data-root /data --limit 100",
                     "python -m neuro_agmm.data info"])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="bin a dataset into datasets/<name>/cache/<key>_v2/ (memory-mappable .npy)")
    cli.add_dataset(p, EVENT_DATASETS, required=True)
    cli.add_data_root(p)
    p.add_argument("--time-steps", "-T", type=int, default=8, help="time bins per recording (default 8)")
    p.add_argument("--binning", default="time", choices=("time", "count"),
                   help="equal time bins over each recording's span, or equal event counts (default time)")
    p.add_argument("--downsample", type=int, help="spatial downsampling factor (default: 4 for 128x128 sensors, else 1)")
    p.add_argument("--clip", type=int, default=15, help="clip counts per pixel and bin to this (default 15)")
    p.add_argument("--limit", type=int, help="only the first N recordings per split (a quick look)")
    p.add_argument("--samples", type=int, default=10, help="digits-dvs: test recordings written as event files")
    cli.add_progress(p)
    i = sub.add_parser("info", help="list datasets, recordings and caches under the data root")
    cli.add_data_root(i)
    args = ap.parse_args(argv)
    from neuro_agmm.events import EventFileError
    from neuro_agmm.data.event_datasets import DatasetNotFoundError, load_event_split, prepare
    try:
        if args.cmd == "info":
            _info(Path(args.data_root))
            return 0
        if args.time_steps < 1:
            raise ValueError(f"--time-steps must be >= 1, got {args.time_steps}")
        path = prepare(args.dataset, args.data_root, args.time_steps, args.binning, args.downsample, args.clip,
                       progress=cli.progress_wanted(args.progress), limit=args.limit)
        split = load_event_split(args.dataset, args.data_root, args.time_steps, binning=args.binning,
                                 downsample=args.downsample, clip=args.clip) if args.limit is None else None
        print(f"wrote {path}")
        if split is not None:
            m = split.meta
            print(f"{args.dataset}: train {split.train_x.shape}, test {split.test_x.shape}, input_max "
                  f"{split.input_max}, {m['events']} events, clipped {m['clipped_fraction']:.2%} of nonzero counts"
                  + (f", skipped {m['skipped']}" if m["skipped"] else ""))
        if args.dataset == "digits-dvs" and args.samples:
            files = write_digits_samples(args.data_root, args.samples)
            print(f"wrote {len(files)} sample recordings under {Path(args.data_root) / 'digits-dvs' / 'samples'}")
    except cli.user_errors() + (DatasetNotFoundError, EventFileError, OSError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
