"""One command-line vocabulary for every ``python -m neuro_agmm.<job>``.

The same flag for the same thing in every job (the artifact is the positional ``ARTIFACT``;
``--data-root``; ``--dataset`` listing its choices; ``--progress/--no-progress``), an example in
every ``--help``, and one error policy: a user mistake (bad file, bad flag value, missing data)
prints one ``error:`` line and exits 2; anything else is a bug and keeps its traceback (exit 1).
Progress bars switch themselves off when stderr is not a terminal, so CI logs stay readable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable, Optional, Sequence

DEFAULT_DATA_ROOT = "datasets"


class UserError(ValueError):
    """A mistake the user can fix (bad flag combination, missing file); reported as one line, exit 2."""


def parser(job: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for ``python -m neuro_agmm.<job>`` whose help ends with worked examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return argparse.ArgumentParser(prog=f"python -m neuro_agmm.{job}", description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_artifact(p: argparse.ArgumentParser, help: str = "model artifact (.h5) written by neuro_agmm.train") -> None:
    p.add_argument("artifact", metavar="ARTIFACT", help=help)


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT, metavar="DIR",
                   help=f"data root holding the datasets (default: {DEFAULT_DATA_ROOT})")


def add_dataset(p: argparse.ArgumentParser, choices: Iterable[str], required: bool = False,
                default: Optional[str] = None, help: str = "dataset") -> None:
    choices = tuple(choices)
    p.add_argument("--dataset", choices=choices, required=required, default=default, metavar="NAME",
                   help=f"{help}: {' | '.join(choices)}" + (f" (default: {default})" if default else ""))


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: on when stderr is a terminal)")


def progress_wanted(flag: Optional[bool]) -> bool:
    """``--progress``/``--no-progress`` as given, else on only for an interactive terminal."""
    return bool(flag) if flag is not None else sys.stderr.isatty()


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the input is wrong", not "the code is wrong".

    Every documented error of the project derives from ``ValueError`` (``ArtifactError``,
    ``EventFileError``, ``CheckpointError``, ``PlacementError``, ``InferError``, ``UserError``, the
    quantizer's register errors) or is a missing/unreadable path.
    """
    return (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def run(job: Callable[[argparse.Namespace], int], p: argparse.ArgumentParser,
        argv: Optional[Sequence[str]] = None, extra_user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse ``argv`` with ``p`` and call ``job(args)``: user errors -> one ``error:`` line, exit 2."""
    args = p.parse_args(argv)
    try:
        return int(job(args) or 0)
    except user_errors() + extra_user_errors as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
