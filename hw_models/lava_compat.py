"""Make lava-nc 0.10.0 importable on Python 3.11, without touching the installed files.

Why: ``lava/magma/compiler/var_model.py`` declares dataclass fields with a mutable
default (``x: ByteEncoder = ByteEncoder()``). Python 3.11 rejects that at class
creation, so ``import lava.magma...`` fails. This module installs a meta-path finder
that rewrites exactly those declarations to ``field(default_factory=ByteEncoder)``
while the module is compiled. It is:

* guarded — it only acts on that one module, and only if the faulty pattern is
  present, so a fixed Lava release passes through untouched (``patch_applied()``
  then reports False);
* removable — delete this file and the single ``install()`` call in
  ``hw_models/__init__.py`` once Lava ships the fix.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType
from typing import Optional, Sequence

TARGET_MODULE = "lava.magma.compiler.var_model"
_FAULTY = re.compile(r"^(\s+\w+:\s*ByteEncoder)\s*=\s*ByteEncoder\(\)\s*$", re.MULTILINE)
_state = {"applied": False}


def fix_source(source: str) -> str:
    """Return ``source`` with mutable ``ByteEncoder()`` defaults turned into default factories."""
    return _FAULTY.sub(r"\1 = __import__('dataclasses').field(default_factory=ByteEncoder)", source)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Compiles the module from its (fixed) source, never from a stale bytecode cache."""

    def get_code(self, fullname: str):  # type: ignore[override]
        path = self.get_filename(fullname)
        text = self.get_data(path).decode("utf-8")
        fixed = fix_source(text)
        _state["applied"] = fixed != text
        return compile(fixed, path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None):
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin)
        return spec


def install() -> None:
    """Install the finder once (idempotent). Must run before Lava's compiler is imported."""
    if any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        return
    if TARGET_MODULE in sys.modules:
        return  # already imported (on a Lava/Python that did not need us)
    sys.meta_path.insert(0, _VarModelFinder())


def patch_applied() -> bool:
    """True if the Lava module was imported through the fix (False on a fixed Lava)."""
    return bool(_state["applied"])
