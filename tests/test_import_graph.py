"""The package's import graph: no cycles, and no lower layer importing a higher one.

Built from the source with ``ast`` (every ``import``/``from ... import``, including those inside
functions), so a lazy import cannot hide an upward dependency. The layers, lowest first, are the
data flow of docs/architecture.md: a module may import its own layer or any lower one.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (prefix, layer); the longest matching prefix decides a module's layer
LAYERS = [
    ("neuro_agmm.artifact", 0), ("neuro_agmm", 0),  # the package root holds only __version__
    ("hw_models", 1), ("hw_models.lava_compat", 1), ("hw_models.core_spec", 1), ("hw_models.core_limits", 1),
    ("hw_models.energy_figures", 1), ("neuro_agmm.events", 1),
    ("hw_models.integer_network", 2), ("hw_models.geometry", 2), ("hw_models.results", 2), ("neuro_agmm.data", 2),
    ("hw_models.mapping", 3), ("neuro_agmm.training", 3),
    ("hw_models.backends", 4),
    ("neuro_agmm.deploy", 5),
    ("neuro_agmm.streaming", 6),
    ("neuro_agmm.cli", 7), ("neuro_agmm.study", 7),  # the AGMM study drives training runs like a job

    ("neuro_agmm.train", 8), ("neuro_agmm.export", 8), ("neuro_agmm.map", 8), ("neuro_agmm.crosscheck", 8),
    ("neuro_agmm.infer", 8), ("neuro_agmm.report", 8), ("neuro_agmm.plots", 8), ("neuro_agmm.demo", 8),
    ("neuro_agmm.convert", 8),
    ("neuro_agmm.data.__main__", 8), ("neuro_agmm.study.__main__", 8),
]
# Deliberate exceptions, each with its reason.
ALLOWED_UPWARD = {
    # the streaming torch stepper runs the artifact's float network through the training side's layers
    ("neuro_agmm.streaming.steppers", "neuro_agmm.training.export"),
}


def layer_of(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def modules() -> dict[str, Path]:
    out = {}
    for pkg in ("neuro_agmm", "hw_models"):
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (``from pkg import mod`` resolves to ``pkg.mod`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def test_every_module_has_a_layer(graph):
    for m in graph:
        layer_of(m)  # raises ValueError (max of empty) for a module outside every layer


def test_no_upward_imports(graph):
    bad = [(m, t, layer_of(m), layer_of(t)) for m, ts in graph.items() for t in ts
           if layer_of(t) > layer_of(m) and (m, t) not in ALLOWED_UPWARD
           and not (t == "neuro_agmm" or t.startswith("neuro_agmm.") and m.startswith(t + "."))]
    assert not bad, "upward imports (module, imports, its layer, their layer):\n" + "\n".join(map(str, bad))


def test_no_import_cycles(graph):
    # package __init__ -> its own submodules is the normal re-export shape, not a cycle of concepts
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_sees_an_upward_import(tmp_path):
    f = tmp_path / "fake.py"
    f.write_text("def f():\n    from neuro_agmm.streaming.run import infer\n")
    assert "neuro_agmm.streaming.run" in imports_of("hw_models.core_spec", f, set(modules()))
    assert layer_of("neuro_agmm.streaming.run") > layer_of("hw_models.core_spec")
