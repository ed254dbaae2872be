"""``python -m neuro_agmm.infer ARTIFACT --events FILE_OR_DIR``: event-driven inference on DVS streams.

A thin CLI over ``neuro_agmm.streaming.run.infer``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from neuro_agmm import cli


def _sensor(text: str) -> tuple[int, int, int]:
    try:
        w, h, p = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W,H,P (e.g. 128,128,2), got {text!r}") from None
    if min(w, h, p) < 1:
        raise argparse.ArgumentTypeError(f"sensor size {text!r} must be positive")
    return w, h, p


def build_parser() -> argparse.ArgumentParser:
    from neuro_agmm.data import EVENT_DATASETS
    from neuro_agmm.streaming.run import BACKENDS

    p = cli.parser("infer", "Event-driven streaming inference of a model artifact on DVS recordings: events are "
                            "consumed in windows as they arrive, the network state is carried across windows, and "
                            "a prediction is made after every window. Prints a summary table; --json writes "
                            "every number.",
                   ["python -m neuro_agmm.infer runs/demo/digits-dvs-agmm/model.h5 --events datasets/digits-dvs/samples",
                    "python -m neuro_agmm.infer model.h5 --dataset digits-dvs --split test --backend emulator",
                    "python -m neuro_agmm.infer model.h5 --events rec.npy --sensor-size 128,128,2 --step-us 1000",
                    "python -m neuro_agmm.infer model.h5 --dataset digits-dvs --workers 2"])
    cli.add_artifact(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", metavar="FILE_OR_DIR", help="an event file (.bin .aedat .aedat4 .npy .npz .h5) "
                                                             "or a directory of them")
    cli.add_dataset(src, EVENT_DATASETS, help="stream a dataset split instead")
    p.add_argument("--split", default="test", choices=("train", "test"), help="dataset split (default test)")
    cli.add_data_root(p)
    p.add_argument("--backend", default="emulator", choices=BACKENDS, help="default emulator")
    p.add_argument("--window-us", type=int, help="window length in µs (default: one network step)")
    p.add_argument("--step-us", type=int, help="network time-step length in µs (default: the artifact's encoding)")
    p.add_argument("--sensor-size", type=_sensor, metavar="W,H,P",
                   help="sensor size of the recordings (default: what each file states)")
    p.add_argument("--limit", type=int, help="only the first N recordings")
    p.add_argument("--workers", type=int, default=1,
                   help="stream recordings in N processes (emulator / torch backends; default 1)")
    p.add_argument("--json", metavar="OUT.json", help="write the full result (per recording and window) as JSON")
    cli.add_progress(p)
    return p


def _job(args: argparse.Namespace) -> int:
    from neuro_agmm.streaming.run import infer

    res = infer(args.artifact, args.events, args.backend, args.window_us, dataset=args.dataset, split=args.split,
                root=args.data_root, step_us=args.step_us, limit=args.limit,
                progress=cli.progress_wanted(args.progress), sensor_size=args.sensor_size, workers=args.workers)
    print(res.summary())
    if args.json:
        print(f"wrote {res.write_json(args.json)}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
