"""``python -m neuro_agmm.train``: train a BSNN (vanilla, AGMM) or its full-precision baseline.

A thin CLI over ``neuro_agmm.training.loop.train``: flags map 1:1 onto ``TrainConfig`` fields
(``--config FILE.json`` first, flags override it); ``--resume RUN_DIR`` continues a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Optional

from neuro_agmm import cli
from neuro_agmm.training.agmm import AGMMConfig
from neuro_agmm.training.checkpoint import CheckpointError, load_checkpoint
from neuro_agmm.training.loop import METHODS, TrainConfig, TrainingDiverged, train

AGMM_HELP = {"where": "weight | output | layer | forward (the forward gate)", "alpha": "α[t] schedule: exp | const | linear",
             "gamma": "decay of the exp schedule", "k": "sigmoid slope", "c": "sigmoid centre (adaptive off)",
             "adaptive": "centre/spread from running statistics", "momentum": "EMA momentum of those statistics",
             "normalize": "normalise the factors to ~1", "anneal": "a(p) = 1 - anneal * progress",
             "layers": "binary | all", "renorm": "factors average exactly a(p) per batch",
             "brake": "> 0: shrink gradients of latent weights near 0 (our addition)"}



def build_parser() -> argparse.ArgumentParser:
    from neuro_agmm.data import DATASETS
    from neuro_agmm.training.models import ARCHS

    ap = cli.parser("train", "Train a binary SNN (vanilla STE or AGMM) or its full-precision baseline; writes "
                             "metrics, checkpoints, model.h5 and summary.json into the run directory.",
                    ["python -m neuro_agmm.train --dataset digits --method agmm --epochs 40 --out runs/digits-agmm",
                     "python -m neuro_agmm.train --resume runs/digits-agmm",
                     "torchrun --standalone --nproc_per_node 2 -m neuro_agmm.train --distributed --dataset digits",
                     "torchrun --standalone --nproc_per_node 8 -m neuro_agmm.train --distributed --device cuda "
                     "--dataset cifar10 --arch vgg11 --loader-workers 4 --augment crop-flip"])
    ap.error = lambda message: ap.exit(2, f"{ap.prog}: error: {message} (see --help)\n")  # one line, no usage dump
    d = TrainConfig()
    ap.add_argument("--config", metavar="FILE.json", help="JSON file of TrainConfig fields; flags override it")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint "
                                                         "(its saved config is used; other flags are ignored)")
    ap.add_argument("--dataset", choices=DATASETS, metavar="NAME",
                    help=f"dataset: {' | '.join(DATASETS)} (default {d.dataset})")
    ap.add_argument("--data-root", metavar="DIR", help=f"data root holding the datasets (default: {d.data_root})")
    ap.add_argument("--arch", choices=ARCHS, help=f"{' | '.join(ARCHS)} (default {d.arch})")
    ap.add_argument("--method", choices=METHODS, help=f"{' | '.join(METHODS)} (default {d.method})")
    ap.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    ap.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    ap.add_argument("--lr", type=float, help=f"learning rate (default {d.lr})")
    ap.add_argument("--optimizer", help=f"adam | adamw | sgd (default {d.optimizer})")
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--momentum", type=float, help="SGD momentum")
    ap.add_argument("--binary-lr-scale", type=float,
                    help="learning-rate factor for the latent binary weights only (default 1; a step-size control)")
    ap.add_argument("--binary-optimizer", choices=("same", "sgd"),
                    help="the latent binary weights' optimizer: same (as --optimizer) | sgd (SGD with --momentum; "
                         "the rest keeps --optimizer) (default same)")
    ap.add_argument("--binary-lr", type=float, help="the latent binary weights' base learning rate (default --lr)")
    ap.add_argument("--scheduler", help="cosine | none (default cosine)")
    ap.add_argument("--time-steps", "-T", type=int, help=f"SNN time steps (default {d.time_steps})")
    ap.add_argument("--encoding", help="direct | rate for frame datasets (default direct)")
    ap.add_argument("--seed", type=int, help=f"default {d.seed}")
    ap.add_argument("--out", help="run directory (default runs/<dataset>-<arch>-<method>-s<seed>)")
    ap.add_argument("--threads", type=int, help=f"torch threads (default {d.threads})")
    ap.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                    help="also checkpoint every STEPS optimizer steps (default: epoch ends only)")
    ap.add_argument("--first-last", help="precision of first and readout layers: int8 | binary (default int8)")
    ap.add_argument("--leak", type=float, help=f"LIF leak (default {d.leak})")
    ap.add_argument("--threshold", type=float, help=f"LIF threshold (default {d.threshold})")
    ap.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, help="batch norm in hidden layers")
    ap.add_argument("--surrogate", help="Norse surrogate: super | triangle | tanh | circ (default super)")
    ap.add_argument("--hidden", type=int, nargs="+", help="mlp hidden sizes (default 256 256)")
    ap.add_argument("--width", type=float, help="channel multiplier for conv archs")
    ap.add_argument("--instrument", action=argparse.BooleanOptionalAction,
                    help="flip/gradient instrumentation of binary layers (default on)")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction,
                    help="tqdm progress bar (default: on when stderr is a terminal; the per-epoch line is always printed)")
    ap.add_argument("--device", help="cpu | cuda | cuda:N | auto (CUDA when present) (default auto)")
    ap.add_argument("--loader-workers", type=int, metavar="N",
                    help="DataLoader worker processes building training batches (default 0: in this process; "
                         "the batches are the same either way)")
    ap.add_argument("--augment", choices=("none", "crop-flip"),
                    help="training augmentation for image-shaped inputs: random pad-and-crop + horizontal flip")
    ap.add_argument("--bn-recalibrate", type=int, metavar="BATCHES",
                    help="re-estimate batch-norm running statistics on this many training batches before every "
                         "evaluation and the export (default 16; 0: off)")
    ap.add_argument("--half-precision", choices=("none", "bf16"),
                    help="bf16: binary layers fed by spikes compute sign(w)·x in bfloat16, cut into exact chunks of "
                         "<= 256 terms (the forward stays bit-identical to float32; the backward is rounded)")
    ap.add_argument("--limit-train", type=int, help="use only the first N training samples")
    ap.add_argument("--limit-test", type=int, help="use only the first N test samples")
    ap.add_argument("--eval-batch-size", type=int)
    ap.add_argument("--distributed", action=argparse.BooleanOptionalAction,
                    help="data-parallel training under torchrun (gloo on CPU, NCCL on GPU); --batch-size is global")
    g = ap.add_argument_group("AGMM (method agmm; our reconstruction, see docs/agmm.md)")
    defaults = AGMMConfig()
    for f in fields(TrainConfig):  # one flag per agmm_* field; the knob itself is AGMMConfig's
        if not f.name.startswith("agmm_"):
            continue
        name = f.name[len("agmm_"):]
        default = getattr(defaults, name)
        kind = (dict(action=argparse.BooleanOptionalAction) if isinstance(default, bool)
                else dict(type=type(default)) if isinstance(default, (int, float)) else {})
        g.add_argument(f"--agmm-{name.replace('_', '-')}", help=f"{AGMM_HELP.get(name, name)} (default {default})",
                       **kind)
    return ap


def config_from_args(argv: Optional[list[str]] = None) -> tuple[TrainConfig, bool]:
    """Parse CLI args (``--config`` file first, flags override). Returns ``(cfg, resume)``; exits 2 on bad input."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.resume:
        try:
            ck = load_checkpoint(args.resume)
        except CheckpointError as e:
            ap.error(f"--resume: {e}")
        cfg = TrainConfig.from_dict(ck.config)
        cfg.out = str(args.resume if Path(args.resume).is_dir() else Path(args.resume).parent)
        if args.progress is not None:
            cfg.progress = args.progress
        return cfg, True
    base: dict = {}
    if args.config:
        try:
            base = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            ap.error(f"--config {args.config}: {e}")
        if not isinstance(base, dict):
            ap.error(f"--config {args.config}: expected a JSON object of TrainConfig fields")
    for k, v in vars(args).items():
        if k not in ("config", "resume") and v is not None:
            base[k] = v
    try:
        cfg = TrainConfig.from_dict(base)
        cfg.validate()
    except (ValueError, TypeError) as e:
        ap.error(str(e))
    return cfg, False


def main(argv: Optional[list[str]] = None) -> int:
    cfg, resume = config_from_args(argv)
    from neuro_agmm.training.distributed import is_main, shutdown
    try:
        res = train(cfg, resume=resume)
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 1
    except cli.user_errors() as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    finally:
        shutdown()
    if not is_main() or not res.summary:
        return 0
    s = res.summary
    print(f"done: {res.run_dir}  test_acc {s['final'].get('test_acc', float('nan')):.4f}  "
          f"artifact {s.get('artifact')} (artifact test_acc {s.get('artifact_test_acc', float('nan')):.4f})  "
          f"train {s['train_seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
