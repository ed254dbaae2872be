"""Tables, verdicts and figures of a finished study (``study.json``).

Claims checked, each as *reproduced*, *not reproduced* or *refuted* (``stats.verdict``), AGMM against
vanilla on the same seeds:

=====================  =========================================  ===========
claim                  statistic (per run)                        AGMM should be
=====================  =========================================  ===========
fewer sign flips       flips per update, mean over epochs          lower, *and* above vanilla's frontier
lower gradient mean    per-weight mean gradient toward zero        lower
lower gradient var.    per-weight variance across minibatches      lower
faster convergence     validation accuracy, mean over epochs       higher
higher accuracy        final test accuracy                         higher
lower firing rate      test-set firing rate, final model           lower
=====================  =========================================  ===========
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from neuro_agmm.study.arms import AGMM_VARIANTS, FRONTIER_SCALES, frontier_arm
from neuro_agmm.study.frontier import margins
from neuro_agmm.study.stats import ALPHA, one_sample, paired, verdict

CLAIMS = [  # (claim, record key, direction AGMM should have, format)
    ("fewer sign flips", "flips", "lower", ".3e"),
    ("lower gradient mean (toward zero)", "gtoward", "lower", ".3e"),
    ("lower gradient variance", "gvar", "lower", ".3e"),
    ("faster convergence (val. acc. AUC)", "val_auc", "higher", ".4f"),
    ("higher accuracy", "test_acc", "higher", ".4f"),
    ("lower firing rate", "test_rate", "lower", ".4f"),
]
COLUMNS = [  # (header, key, format)
    ("test acc", "test_acc", ".4f"), ("deployed acc", "deployed_acc", ".4f"), ("flips/update", "flips", ".2e"),
    ("net flips, last epoch", "flip_epoch_last", ".4f"), ("g toward 0", "gtoward", ".2e"), ("g var", "gvar", ".2e"),
    ("g SNR", "gsnr", ".3f"), ("p_w(0)", "pw0", ".2f"), ("E|Δw|", "dw", ".2e"), ("κ", "kappa", ".2f"),
    ("firing rate", "test_rate", ".4f"), ("SynOps/inference", "synops", ".3g"), ("samples/s", "samples_per_s", ".0f"),
]


def _derived(r: dict) -> dict:
    r = dict(r)
    r["flip_epoch_last"] = r["flip_epoch_curve"][-1] if r.get("flip_epoch_curve") else float("nan")
    r["kappa"] = r["flips"] / r["flip_pred"] if r.get("flip_pred") else float("nan")
    if r.get("deployed_acc") is None:
        r["deployed_acc"] = float("nan")
    return r


def by_arm(records: list[dict]) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for r in records:
        out.setdefault(r["arm"], {})[int(r["seed"])] = _derived(r)
    return out


def _ms(vals: list[float], fmt: str) -> str:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return "–"
    return f"{np.mean(v):{fmt}} ± {np.std(v, ddof=1):{fmt}}" if len(v) > 1 else f"{v[0]:{fmt}}"


def _p(p: float) -> str:
    return "–" if not math.isfinite(p) else f"{p:.2g}"


def compare(arms: dict[str, dict[int, dict]], a: str, b: str, key: str) -> Any:
    seeds = sorted(set(arms.get(a, {})) & set(arms.get(b, {})))
    return paired([arms[a][s][key] for s in seeds], [arms[b][s][key] for s in seeds])


def frontier_margins(arms: dict[str, dict[int, dict]], arm: str, key: str, higher: bool) -> Any:
    """Per-seed margin of ``arm`` above vanilla's step-size frontier in ``key`` (at the arm's flips), tested vs 0."""
    front = {s: [(arms[frontier_arm(sc)][s]["flips"], arms[frontier_arm(sc)][s][key]) for sc in FRONTIER_SCALES
                 if s in arms.get(frontier_arm(sc), {})] for s in arms.get("vanilla", {})}
    pts = {s: (r["flips"], r[key]) for s, r in arms.get(arm, {}).items()}
    m = margins(front, pts, higher_is_better=higher)
    return one_sample([m[s] for s in sorted(m)])


def claim_rows(arms: dict[str, dict[int, dict]], a: str, b: str, n_test_images: int) -> tuple[list[str], dict]:
    """Markdown rows (one per claim) for ``a`` (an AGMM arm) against ``b`` (its vanilla), and the verdicts."""
    rows, verdicts = [], {}
    for claim, key, direction, fmt in CLAIMS:
        p = compare(arms, a, b, key)
        v = verdict(p, direction)
        extra = ""
        if key == "flips":
            fm = frontier_margins(arms, a, "test_acc", True)
            above = fm.n > 0 and fm.diff > 0 and fm.p_t < ALPHA and fm.p_wilcoxon < ALPHA
            extra = (f"; accuracy above the frontier at its flips: {100 * fm.diff:+.2f} points "
                     f"(p_t {_p(fm.p_t)}, p_W {_p(fm.p_wilcoxon)})")
            if v == "reproduced" and not above:
                v = "not reproduced (fewer flips, but not above vanilla's step-size frontier)"
        if key == "test_acc":
            extra = f"; {p.diff * n_test_images:+.1f} test images"
        if key == "val_auc":
            tr = compare(arms, a, b, "train_auc")
            extra = f"; training-mode accuracy AUC {tr.diff:+.4f} (p_t {_p(tr.p_t)})"
        won = p.a_lower if direction == "lower" else p.a_higher
        rows.append(f"| {claim} | {p.mean_a:{fmt}} | {p.mean_b:{fmt}} | {p.diff:+{fmt}} | {_p(p.p_t)} | "
                    f"{_p(p.p_wilcoxon)} | {won}/{p.n} | **{v}**{extra} |")
        verdicts[claim] = {"verdict": v, **p.as_dict()}
    return rows, verdicts


def dataset_section(name: str, entry: dict, fig_dir: Optional[Path], fig_prefix: str = "") -> tuple[str, dict]:
    """The markdown section of one dataset and its verdicts."""
    arms = by_arm(entry["test"])
    sel = by_arm(entry["selection"])
    ch = entry["choices"]
    sizes = entry.get("split_sizes", {})
    n_test = int(sizes.get("test", 0))
    cfg = entry["config"]
    lines = [f"## {name}", "",
             f"{cfg['arch']} (hidden {cfg.get('hidden') or 'default'}), T = {cfg['time_steps']}, {cfg['epochs']} "
             f"epochs, batch {cfg['batch_size']}, Adam lr {cfg['lr']:g} with cosine schedule; split "
             f"{sizes.get('train')} train / {sizes.get('val')} validation / {n_test} test.", "",
             "### Selection (validation accuracy, selection seeds only)", "",
             "| arm | val acc | flips/update | seeds |", "|---|---|---|---|"]
    for arm, recs in sel.items():
        mark = " ←" if arm in (ch["vanilla_tuned"], ch["agmm_selected"], ch["sgd_arm"]) else ""
        lines.append(f"| {arm}{mark} | {_ms([r['val_acc'] for r in recs.values()], '.4f')} | "
                     f"{_ms([r['flips'] for r in recs.values()], '.2e')} | {len(recs)} |")
    lines += ["", f"Chosen: vanilla (tuned) = `{ch['vanilla_tuned']}`, AGMM (selected) = `{ch['agmm_selected']}`, "
                  f"SGD latent learning rate = {ch['sgd_lr']:g} (`{ch['sgd_arm']}`).", "",
              "### Every arm on the test seeds (mean ± sd over seeds)", "",
              "| arm | seeds | " + " | ".join(h for h, _, _ in COLUMNS) + " |",
              "|---|---|" + "---|" * len(COLUMNS)]
    for arm, recs in arms.items():
        cells = [_ms([r[k] for r in recs.values()], f) for _, k, f in COLUMNS]
        lines.append(f"| {arm} | {len(recs)} | " + " | ".join(cells) + " |")
    lines += ["", "κ = flips per update / (p_w(0) · E|Δw|), the random-walk prediction (weights within E|Δw| of 0 "
                  "flip when they step toward it): 1 = steps near zero are blind to the sign; the issue's "
                  "½ · p_w(0) · E|Δw| convention gives 2κ. " + flip_model_line(entry["test"]), ""]
    lines += ["### AGMM variants against vanilla's step-size frontier", "",
              "| variant | flips vs vanilla | accuracy above frontier (points) | p_t | p_W | firing rate below "
              "frontier | p_t | verdict |", "|---|---|---|---|---|---|---|---|"]
    for arm in list(AGMM_VARIANTS) + ["agmm-sgd"]:
        if arm not in arms:
            continue
        ratio = compare(arms, arm, "vanilla", "flips")
        acc = frontier_margins(arms, arm, "test_acc", True)
        rate = frontier_margins(arms, arm, "test_rate", False)
        above = acc.n > 0 and acc.diff > 0 and acc.p_t < ALPHA and acc.p_wilcoxon < ALPHA
        below = acc.n > 0 and acc.diff < 0 and acc.p_t < ALPHA and acc.p_wilcoxon < ALPHA
        v = "above (reduces flips)" if above else "below" if below else "on the frontier (no significant margin)"
        rel = ratio.mean_a / ratio.mean_b - 1 if ratio.mean_b else float("nan")
        lines.append(f"| {arm} | {100 * rel:+.0f} % | {100 * acc.diff:+.2f} | {_p(acc.p_t)} | {_p(acc.p_wilcoxon)} | "
                     f"{rate.diff:+.4f} | {_p(rate.p_t)} | {v} |")
    lines += ["", "agmm-sgd is placed on the Adam frontier for reference only (another optimizer).", ""]
    verdicts = {}
    pairs = [("agmm", "vanilla", "default AGMM vs vanilla")]
    if (ch["agmm_selected"], ch["vanilla_tuned"]) != ("agmm", "vanilla"):
        pairs.append((ch["agmm_selected"], ch["vanilla_tuned"], "AGMM (selected on validation) vs vanilla (tuned)"))
    pairs.append(("agmm-sgd", ch["sgd_arm"], "latent weights by SGD: AGMM vs vanilla"))
    for a, b, title in pairs:
        rows, v = claim_rows(arms, a, b, n_test)
        verdicts[f"{a} vs {b}"] = v
        n = len(set(arms.get(a, {})) & set(arms.get(b, {})))
        lines += [f"### Claims: {title} (`{a}` vs `{b}`, {n} paired seeds)", "",
                  "| claim | AGMM | vanilla | difference | p (t-test) | p (Wilcoxon) | seeds won | verdict |",
                  "|---|---|---|---|---|---|---|---|", *rows, ""]
    lines += ["### Per layer, last epoch (training batches; firing rates of the training batches)", "",
              *layer_table(arms, ["vanilla", "agmm"]), ""]
    gate = [r["forward_gate"] for r in arms.get("agmm-forward", {}).values() if r.get("forward_gate")]
    if gate:
        cost = [100 * g["fold_cost"] for g in gate]
        lines += [f"Forward gate folded into batch norm for export (one constant per layer, measured on "
                  f"{gate[0]['fold_batches']} training batches): test accuracy {_ms([g['gated_test_acc'] for g in gate], '.4f')} "
                  f"gated → {_ms([g['folded_test_acc'] for g in gate], '.4f')} folded (cost {_ms(cost, '.2f')} points).", ""]
    pr = entry.get("probe", {})
    if pr:
        ref = pr.get("vanilla", {})
        lines += ["### Identical-weights probe (one set of trained vanilla weights, the same minibatches; "
                  "relative to vanilla; g toward 0 absolute: vanilla's is ~0, so a ratio says nothing)", "",
                  "| mechanism | g toward 0 | g var | g SNR | flip prob., SGD step | flip prob., Adam step |",
                  "|---|---|---|---|---|---|"]
        for mech, s in pr.items():
            def rel(k: str) -> str:
                return f"{s[k]:.3g} ({100 * (s[k] / ref[k] - 1):+.0f} %)" if ref.get(k) else f"{s[k]:.3g}"
            lines.append(f"| {mech} | {s['gtoward']:.3g} | {rel('gvar')} | {rel('gsnr')} | {rel('flip_sgd')} | "
                         f"{rel('flip_adam')} |")
        lines.append("")
    if fig_dir is not None:
        fig = frontier_figure(name, arms, fig_dir / f"{fig_prefix}frontier_{name}.png")
        lines += [f"![frontier {name}]({fig.name})", ""]
    return "\n".join(lines), verdicts


def _save(fig, path: Path, dpi: int) -> Path:
    """Write ``fig`` as PNG atomically (as every file of the project) and close it."""
    import matplotlib.pyplot as plt

    from neuro_agmm.artifact import atomic_write

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)
    return path


def frontier_figure(name: str, arms: dict[str, dict[int, dict]], path: Path) -> Path:
    """Accuracy against flips and firing rate against flips: vanilla's frontier (line) and every variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "test_acc", "test accuracy"), (axes[1], "test_rate", "firing rate (test)")):
        fx, fy = [], []
        for sc in FRONTIER_SCALES:
            recs = list(arms.get(frontier_arm(sc), {}).values())
            if not recs:
                continue
            x, y = [r["flips"] for r in recs], [r[key] for r in recs]
            fx.append(np.mean(x))
            fy.append(np.mean(y))
            ax.errorbar(np.mean(x), np.mean(y), xerr=np.std(x), yerr=np.std(y), fmt="o", color="k", capsize=2)
            ax.annotate(f"×{sc:g}", (np.mean(x), np.mean(y)), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.plot(fx, fy, "k-", lw=1, label="vanilla, latent lr ×0.25…×2")
        for arm in list(AGMM_VARIANTS) + ["agmm-sgd"]:
            recs = list(arms.get(arm, {}).values())
            if recs:
                x, y = [r["flips"] for r in recs], [r[key] for r in recs]
                ax.errorbar(np.mean(x), np.mean(y), xerr=np.std(x), yerr=np.std(y), fmt="s", capsize=2, label=arm)
        ax.set_xscale("log")
        ax.set_xlabel("sign flips per update (mean over training)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{name}: AGMM variants against vanilla's step-size frontier (mean ± sd over seeds)")
    return _save(fig, path, dpi=110)


CURVE_ROWS = [  # (record curve, y label, log scale)
    ("flip_curve", "sign flips per update", True), ("flip_epoch", "net flips, epoch to epoch", True),
    ("pw0", "p_w(0) (density at 0)", False), ("dw", "E|Δw| per update", True),
    ("gtoward", "gradient toward 0", False), ("gsnr", "gradient SNR", False),
]


def _curve(r: dict, key: str) -> list[float]:
    return r["flip_curve"] if key == "flip_curve" else r.get("curves", {}).get(key, [])


def flip_curves_figure(study: dict, path: Path) -> Path:
    """Per-epoch curves (rows: flips per update, net flips, p_w(0), E|Δw|, gradient toward 0, SNR), one column
    per dataset, every row on shared axes across datasets; mean over test seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = list(study["datasets"])
    rows = [r for r in CURVE_ROWS if any(_curve(x, r[0]) for d in ds for x in study["datasets"][d]["test"])]
    fig, axes = plt.subplots(len(rows), len(ds), figsize=(4.5 * len(ds), 2.8 * len(rows)), sharey="row",
                             sharex="col", squeeze=False)
    for j, d in enumerate(ds):
        arms = by_arm(study["datasets"][d]["test"])
        for i, (key, label, log) in enumerate(rows):
            ax = axes[i][j]
            for arm in ["vanilla@x0.25", "vanilla@x0.5", "vanilla", "vanilla@x2", *AGMM_VARIANTS]:
                curves = [c for c in (_curve(r, key) for r in arms.get(arm, {}).values()) if c]
                if not curves:
                    continue
                c = np.nanmean(np.asarray(curves, dtype=float), axis=0)
                ax.plot(np.arange(1, len(c) + 1), c, "--" if arm.startswith("vanilla") else "-", label=arm)
            if log:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(d)
            if j == 0:
                ax.set_ylabel(label)
            if i == len(rows) - 1:
                ax.set_xlabel("epoch")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path, dpi=100)


def flip_model_line(records: list[dict]) -> str:
    """How well p_w(0)·E|Δw| predicts the flips across every binary run of a dataset."""
    pts = [(r["flips"], r["flip_pred"]) for r in records
           if r.get("flip_pred") and math.isfinite(r["flips"]) and math.isfinite(r["flip_pred"])]
    if len(pts) < 3:
        return ""
    f, p = np.asarray(pts).T
    r = float(np.corrcoef(f, p)[0, 1])
    k = f / p
    return (f"Flip model across all {len(pts)} binary test runs: flips per update = κ · p_w(0) · E|Δw| with "
            f"κ median {np.median(k):.2f} (range {k.min():.2f}–{k.max():.2f}), correlation r = {r:.3f}.")


def layer_table(arms: dict[str, dict[int, dict]], names: list[str]) -> list[str]:
    """Per binary layer / spiking block, last epoch, mean over seeds, for the arms ``names``."""
    keys = [("flips/update", "flip", ".2e"), ("net flips", "flip_epoch", ".4f"), ("p_w(0)", "pw0", ".2f"),
            ("E|Δw|", "dw", ".2e"), ("g toward 0", "gtoward", ".2e"), ("g var", "gvar", ".2e"), ("g SNR", "gsnr", ".3f")]
    out = ["| arm | layer | " + " | ".join(h for h, _, _ in keys) + " |", "|---|---|" + "---|" * len(keys)]
    rates = ["| arm | " + "block | firing rate | SynOps/inference |", "|---|---|---|---|"]
    for arm in names:
        recs = list(arms.get(arm, {}).values())
        if not recs:
            continue
        layers = sorted({k.split("/", 1)[1] for r in recs for k in r.get("layers", {})
                         if k.startswith("pw0/") and not k.endswith("/mean")})
        for layer in layers:
            cells = [_ms([r["layers"].get(f"{k}/{layer}", float("nan")) for r in recs], f) for _, k, f in keys]
            out.append(f"| {arm} | {layer} | " + " | ".join(cells) + " |")
        blocks = sorted({k.split("/", 1)[1] for r in recs for k in r.get("layers", {}) if k.startswith("synops/")})
        for blk in blocks:
            short = blk.split(".")[-1]
            rate = _ms([r["layers"].get(f"rate/{short}", float("nan")) for r in recs], ".4f")
            syn = _ms([r["layers"].get(f"synops/{blk}", float("nan")) for r in recs], ".4g")
            rates.append(f"| {arm} | {blk} | {rate} | {syn} |")
    return out + [""] + rates


def render(study: dict, fig_dir: Optional[Path], command: str, fig_prefix: str = "",
           notes: Optional[str] = None) -> tuple[str, dict]:
    """The whole markdown report and ``{dataset: verdicts}``; ``notes`` (markdown) goes after the header."""
    b = study["budget"]
    parts = ["# AGMM study: verdicts per claim", "",
             f"Command: `{command}`", "",
             f"Budget `{b['name']}`: {b['selection_seeds']} selection seed(s) (validation only), {b['test_seeds']} "
             f"test seeds for every arm, {b['headline_seeds']} for the headline arms, probe on {b['probe_batches']} "
             "minibatches. AGMM here is **our reconstruction** (docs/agmm.md), not the paper's equations; the "
             f"verdict rule: *reproduced* = the claimed direction with both paired p-values < {ALPHA}, *refuted* = "
             "the opposite direction with both < 0.05, else *not reproduced*; \"fewer flips\" also needs the "
             "variant above vanilla's step-size frontier. The claims are the public description's "
             "(fewer sign flips, lower gradient mean and variance, faster convergence, higher accuracy, lower "
             "firing rate); the paper's own numbers are not available to us.", ""]
    if min(b["test_seeds"], b["headline_seeds"]) < 6:
        parts += [f"**With {min(b['test_seeds'], b['headline_seeds'])} test seeds no verdict can be *reproduced* or "
                  f"*refuted*: the smallest two-sided Wilcoxon p-value is {2 / 2 ** min(b['test_seeds'], b['headline_seeds']):.3g}. "
                  "This budget checks the pipeline; use `--budget full` for verdicts.**", ""]
    if notes:
        parts += [notes.strip(), ""]
    verdicts = {}
    if fig_dir is not None:
        fc = flip_curves_figure(study, fig_dir / f"{fig_prefix}flip_curves.png")
        parts += [f"![flip curves]({fc.name})", ""]
    for d, entry in study["datasets"].items():
        text, v = dataset_section(d, entry, fig_dir, fig_prefix)
        parts.append(text)
        verdicts[d] = v
    summary = ["## Summary of verdicts (default AGMM vs vanilla)", "", "| claim | " + " | ".join(verdicts) + " |",
               "|---|" + "---|" * len(verdicts)]
    for claim, *_ in CLAIMS:
        cells = []
        for d in verdicts:
            v = verdicts[d]["agmm vs vanilla"][claim]
            cells.append(f"{v['verdict']} ({v['diff']:+.3g}; p_t {_p(v['p_t'])}, p_W {_p(v['p_wilcoxon'])})")
        summary.append(f"| {claim} | " + " | ".join(cells) + " |")
    parts[len(parts) - len(study["datasets"]):len(parts) - len(study["datasets"])] = summary + [""]
    return "\n".join(parts) + "\n", verdicts
