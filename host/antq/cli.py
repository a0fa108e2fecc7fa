"""The ``antq`` command line: every subcommand, defined here, one mechanism.

Each command's parser is built here and its handler imports what it needs only when it runs, so
``antq --help`` needs numpy alone. A missing optional dependency (torch, pynq, scikit-learn,
matplotlib) becomes a message naming the extra to install.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core import arch, formats, regmap
from .core.backends import BACKENDS

EXTRAS = {"torch": "torch", "sklearn": "torch", "matplotlib": "torch", "pynq": "board",
          "pynqmetadata": "board", "pynqutils": "board", "cocotb": "dev"}
"""Top-level module -> the antq extra that installs it (``pip install 'antq[EXTRA]'``)."""
CALIB_DEFAULT = "256"
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
"""What ``--plot`` writes (matplotlib picks the format from the suffix)."""
FORMAT_BITS = tuple(range(formats.MIN_BITS, formats.MAX_BITS + 1))
"""The bit widths antq has formats for (``--bits``)."""


# ---- argument types: every number and output path is checked when the command line is parsed ----
# argparse puts the option's name in front of each message ("argument --limit: must be at least 1").

def _number(cast: type = int, lo: float | None = None, hi: float | None = None, *, above: bool = False
            ) -> Callable[[str], Any]:
    """An argparse type: a finite ``cast`` number >= ``lo`` (> ``lo`` if ``above``) and <= ``hi``."""
    if hi is not None:
        want = f"between {lo} and {hi}"
    else:
        want = f"greater than {lo}" if above else f"at least {lo}"

    def parse(text: str) -> Any:
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number {want}, got {text}")
        if (lo is not None and (v <= lo if above else v < lo)) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return v

    return parse


POSITIVE = _number(int, 1)
COUNT = _number(int, 0)
POSITIVE_FLOAT = _number(float, 0, above=True)


def _writable(p: Path) -> None:
    """Raise unless a file can be created at ``p``: its nearest existing ancestor is a folder in
    which a file can be made (tried, then removed: permissions alone miss read-only mounts)."""
    base = next(a for a in (p, *p.parents) if a.exists())
    if base == p and p.is_file():
        if not os.access(p, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write {p}: permission denied")
        base = p.parent
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {p}: {base} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".antq-probe-"):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write {p}: {base} does not take new files ({e.strerror})"
                                         ) from None


def _output(folder: bool = False, suffixes: tuple[str, ...] = (), example: str = "") -> Callable[[str], Path]:
    """An argparse type for an output file (or ``folder``), checked before any work starts; the
    command creates missing parent folders when it writes. ``example`` is a file name to suggest."""
    example = example or "out" + (suffixes[0] if suffixes else "")

    def parse(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError(f"is empty; give a {'folder' if folder else 'file'} name")
        p = Path(text)
        if folder and p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{p} is a file, not a folder")
        if not folder and p.is_dir():
            raise argparse.ArgumentTypeError(f"{p} is a folder; give a file name in it, e.g. {p / example}")
        if suffixes and p.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{p} must end in {', '.join(suffixes)}")
        _writable(p)
        return p

    return parse


def _calib_arg(text: str) -> str:
    """``--calib``: a number of training samples, or an existing .npy file."""
    if text.endswith(".npy"):
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"{text} is not a file")
        return text
    try:
        POSITIVE(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (give a number of training samples or a .npy file)") from None
    return text


def _override_arg(text: str) -> tuple[str, Any]:
    """``--override LAYER=SPEC``: a config, 'int8' or a bit width for one layer."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"must be LAYER=SPEC (a config, 'int8' or a bit width), got "
                                         f"{text!r}")
    return name, int(value) if value.isdigit() else value


def _backend_list(text: str) -> tuple[str, ...]:
    """``--backends``: comma-separated backend names."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = [b for b in BACKENDS if b != "auto"]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(bad) or 'none given'}; expected a "
                                         f"comma-separated list of {', '.join(known)}")
    return names


# ---- formats ------------------------------------------------------------------------------------

def _cmd_formats(a: argparse.Namespace) -> int:
    for f in formats.all_formats():
        if (a.kind is None or f.kind == a.kind) and (a.bits == 0 or f.bits == a.bits):
            print(formats.table(f))
            print()
    cfg = arch.DEFAULT
    print(f"accelerator: {cfg.rows}x{cfg.cols} PEs, {cfg.bus_bits}-bit bus, "
          f"{cfg.acc_bits}-bit accumulators; decodes every 4-bit format, int8 as nibble passes")
    return 0


# ---- models: quantize, eval, report --------------------------------------------------------------

def _load_torch_model(spec: str) -> Any:
    """A zoo name, or ``package.module:callable`` returning an nn.Module."""
    from .model import zoo

    if spec in zoo.names():
        return zoo.get(spec)
    if ":" in spec:
        import importlib

        from torch import nn

        mod, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot import model {spec!r}: {e}") from e
        model = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else obj
        if not isinstance(model, nn.Module):
            raise ValueError(f"{spec} gives a {type(model).__name__}, not a torch.nn.Module")
        return model.eval()
    raise ValueError(f"unknown model {spec!r}: give a zoo name ({', '.join(zoo.names())}) or module:callable")


def _calib_data(arg: str, dataset: str | None) -> Any:
    import numpy as np

    from .model.datasets import load_dataset

    if arg.endswith(".npy"):
        try:
            return np.load(arg)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read calibration data {arg}: {e}") from e
    n = int(arg)  # checked by _calib_arg
    if dataset is None:
        raise ValueError("the model names no dataset; pass --calib FILE.npy")
    from .model.datasets import TEXT_DATASETS

    if dataset in TEXT_DATASETS:  # token ids and attention masks of the first n training sentences
        from .model.text import load_text

        return {k: v[:n] for k, v in load_text(dataset, "train").items()}
    return load_dataset(dataset, "train")[0][:n]


def _fmt_db(v: float) -> str:
    import math

    return "inf" if math.isinf(v) else f"{v:.1f}"


def _cmd_quantize(a: argparse.Namespace) -> int:
    from .core import container
    from .model.calibrate import fine_tune, quantize_model
    from .model.datasets import load_dataset
    from .model.report import qat_loader

    model = _load_torch_model(a.model)
    dataset = a.dataset or getattr(model, "dataset_name", None)
    x = _calib_data(a.calib, dataset)
    qm = quantize_model(model, x, a.config, a.bits, overrides=dict(a.override),
                        int8_layers=a.int8, auto_int8=a.auto_int8, dataset=dataset, target=a.target)
    if a.qat_epochs:
        if dataset is None:
            raise ValueError("QAT needs a dataset; the model names none (use --dataset)")
        xtr, ytr = load_dataset(dataset, "train")
        fine_tune(qm, qat_loader(xtr, ytr), epochs=a.qat_epochs, lr=a.lr)
    print("types chosen at calibration (SQNR on the calibration data):")
    for row in qm.summary():
        w, i = row["weight"], row["input"]
        print(f"{row['layer']:<20} {row['spec']:<8} weight {w['type']:<8} SQNR "
              f"{_fmt_db(w['sqnr_db']):>5} dB   "
              f"input {i['type']:<8} SQNR {_fmt_db(i['sqnr_db']):>5} dB")
    path = container.save(a.output, qm)
    print(f"wrote {path} ({path.stat().st_size} bytes; dataset {dataset})")
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from .model import zoo
    from .model.datasets import load_dataset
    from .run.evaluate import load_model

    qm = load_model(a.model)
    dataset = a.dataset or qm.dataset
    if dataset is None:
        raise ValueError(f"{a.model} records no dataset; pass --dataset")
    x, y = load_dataset(dataset, a.split)
    if a.limit is not None:
        x, y = x[:a.limit], y[:a.limit]
    logits = [qm.run(x[i:i + a.batch]) for i in tqdm(range(0, len(y), a.batch), desc="eval", unit="batch")]
    acc = zoo.accuracy(np.concatenate(logits), y)
    print(qm.summary())
    print(f"{a.model}: {acc:.2f}% top-1 on {dataset}/{a.split} ({len(y)} samples), "
          f"{qm.macs(1)} MACs per sample, accelerator-ready: {'yes' if qm.accelerator_ready else 'no'}")
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from .model.report import QUICK_SENTENCES, checks, measure, write

    sentences = None if a.no_sentences else (QUICK_SENTENCES if a.quick else {})
    results = measure(qat_epochs=a.qat_epochs, qat_steps=a.qat_steps if a.quick else None, lr=a.lr,
                      sentences=sentences)
    path = write(results, a.output, quick=a.quick)
    for c in checks(results):
        print(f"{'holds' if c['holds'] else 'DOES NOT HOLD'}: {c['check']}: {c['measured']}")
    print(f"wrote {path}")
    return 0


# ---- overlay: run, compare, demo, bench, overlay-info ------------------------------------------

def _cmd_run(a: argparse.Namespace) -> int:
    from .run.backends import open_overlay
    from .run.evaluate import evaluate, held_out, load_model

    model = load_model(a.model)
    x, y = held_out(model, a.limit)
    with open_overlay(a.backend) as ov:
        r = evaluate(model, ov, x, y, batch_size=a.batch)
    print(f"{model.name or Path(a.model).stem}: {r.samples} held-out samples of {model.dataset} on the "
          f"{r.backend} overlay")
    print(f"  accuracy {100 * r.accuracy:.2f} % (software reference {100 * r.reference_accuracy:.2f} %)")
    same = "identical" if r.identical_logits else "NOT identical"
    print(f"  predictions differing from the reference: {r.mismatched_predictions}; logits {same}")
    return 0 if r.mismatched_predictions == 0 and r.identical_logits else 1


def _cmd_compare(a: argparse.Namespace) -> int:
    from .core import reference
    from .run.backends import open_overlay
    from .run.compare import compare
    from .run.evaluate import held_out, load_model

    model = load_model(a.model)
    x, _ = held_out(model, a.limit)
    opened: list = []

    def gemm_of(level: str):
        if level == "host":
            return reference.gemm
        ov = open_overlay(level)
        opened.append(ov)
        return lambda aa, ww: ov.gemm(aa, ww)

    try:
        mm = compare(model, x, gemm_of(a.a), gemm_of(a.b), labels=(a.a, a.b))
    finally:
        for ov in opened:
            ov.close()
    if mm is None:
        print(f"{a.a} and {a.b} agree bit for bit on every layer ({len(x)} samples)")
        return 0
    print(mm)
    return 1


def _cmd_demo(a: argparse.Namespace) -> int:
    from .run.demo import demo

    return 0 if demo(a.backend, a.out, a.batch)["ok"] else 1


def _cmd_bench(a: argparse.Namespace) -> int:
    from .run.backends import open_overlay
    from .run.evaluate import held_out, load_model
    from .run.latency import bench_model, plot_latency, print_latency

    model = load_model(a.model)
    x, _ = held_out(model, a.batch)
    with open_overlay(a.backend) as ov:
        res = bench_model(model, ov, x, clock_mhz=a.clock_mhz, ddr_gbps=a.ddr_gbps, repeats=a.repeats)
    print_latency(res)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
        print(f"wrote {a.json}")
    if a.plot:
        plot_latency(res, a.plot)
        print(f"wrote {a.plot}")
    return 0


def _cmd_overlay_info(a: argparse.Namespace) -> int:
    from .run.backends import describe, open_overlay

    with open_overlay(a.backend) as ov:
        print("\n".join(describe(ov)))
    return 0


# ---- micro-benchmarks ----------------------------------------------------------------------------

def _cmd_bench_quant(a: argparse.Namespace) -> int:
    from .run.microbench import BENCH_QUANT_FULL, BENCH_QUANT_QUICK, bench_quant

    (rows, cols), act = BENCH_QUANT_FULL if a.full else BENCH_QUANT_QUICK
    bench_quant((a.rows or rows, a.cols or cols), a.act_elems or act)
    return 0


def _cmd_bench_calib(a: argparse.Namespace) -> int:
    from .run.microbench import bench_calib

    bench_calib(a.sentences, a.config, a.bits)
    return 0


def _cmd_bench_pack(a: argparse.Namespace) -> int:
    from .run.microbench import bench_pack

    bench_pack((a.rows, a.cols))
    return 0


def _cmd_bench_gemm(a: argparse.Namespace) -> int:
    from .run.microbench import bench_gemm

    board = arch.BOARDS[a.board].array
    rows_, cols = a.array or (board.rows, board.cols)
    cfg = arch.ArrayConfig(rows_, cols, board.bus_bits, board.acc_bits)
    rows = bench_gemm(tuple(a.shape), a.backends, a.a_fmt, a.w_fmt, a.repeats, cfg=cfg)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0 if all(r["exact"] for r in rows) else 1


def _cmd_bench_rtl(a: argparse.Namespace) -> int:
    from .run.microbench import bench_cocotb, bench_rtl

    r = bench_rtl(a.rows, a.cols, a.k, a.jobs)
    print(f"ant_core {r['rows']}x{r['cols']}, Verilator -O3, C harness (build/reuse {r['build_s']:.1f} s): "
          f"{r['cycles']:,} cycles in {r['seconds']:.2f} s = {r['cycles_per_s'] / 1e6:.3f} M array cycles/s "
          f"({r['macs_per_s'] / 1e6:.1f} M MAC/s)")
    if a.cocotb:
        c = bench_cocotb(a.rows, a.cols)
        print(f"ant_core {c['rows']}x{c['cols']}, Verilator -O3, cocotb driver "
              f"(build/reuse {c['build_s']:.1f} s): {c['cycles']:,} cycles in {c['seconds']:.2f} s = "
              f"{c['cycles_per_s'] / 1e3:.1f} k array cycles/s")
        print(f"C harness / cocotb: {r['cycles_per_s'] / c['cycles_per_s']:.0f}x")
    return 0


# ---- toolchain: golden, hls, hwh, rtl-build, area -----------------------------------------------

def _cmd_golden(a: argparse.Namespace) -> int:
    from .core import golden

    path = golden.write(a.output)
    print(f"wrote {len(golden.generate())} cases to {path}")
    epi = Path(a.epilogue) if a.epilogue else Path(a.output).with_name("epilogue.txt")
    path = golden.write_epilogue(epi)
    print(f"wrote {len(golden.generate_epilogue())} epilogue cases to {path}")
    return 0


def _cmd_hls(a: argparse.Namespace) -> int:
    from .toolchain import hls

    if a.hls_cmd == "config":
        print(f"wrote {hls.write_config()}")
    elif a.hls_cmd == "build":
        print(hls.build(a.target))
    else:
        r = hls.run_csim(golden=a.golden, random=a.random, seed=a.seed)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        ok, report = hls.run_deadlock_check()
        print("dataflow shim: a deep FIFO finishes, a too-shallow one is reported as a deadlock"
              if ok else "dataflow shim: FAILED to show a deadlock with a too-shallow FIFO")
        print("  " + report.replace("\n", "\n  "))
        return r.returncode or (0 if ok else 1)
    return 0


def _cmd_vitis(a: argparse.Namespace) -> int:
    from .toolchain import vitis

    if a.prepare_only:
        print(vitis.prepare(a.board, step=a.step))
        return 0
    try:
        return vitis.run(a.board, a.step)
    except vitis.VitisError as e:
        print(f"antq vitis: {e}", file=sys.stderr)
        return 1


def _cmd_hwh(a: argparse.Namespace) -> int:
    from .toolchain import hwh

    print(f"wrote {hwh.write(a.output, arch.ArrayConfig(rows=a.rows, cols=a.cols))}")
    return 0


def _cmd_rtl_build(a: argparse.Namespace) -> int:
    import time

    from .toolchain import verilator

    t0 = time.perf_counter()
    path = verilator.build(a.rows, a.cols, force=a.force)
    print(f"{path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_area(a: argparse.Namespace) -> int:
    from .toolchain import yosys

    known = {d.name: d for d in yosys.designs()}
    unknown = [n for n in a.designs if n not in known]
    if unknown:
        raise ValueError(f"unknown design(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if a.designs and a.full:
        raise ValueError("give design names or --full, not both")
    if a.designs:
        selected = [known[n] for n in a.designs]
    else:
        selected = yosys.designs() if a.full else yosys.quick_designs()
    out = a.output or _build_path("area.json")
    report = yosys.run(selected, jobs=a.jobs, progress=not a.quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(yosys.table(report))
    for c in yosys.checks(report):
        print(c)
    print(f"wrote {out}")
    return 0


def _build_path(name: str) -> Path:
    from .toolchain.paths import build_dir

    return build_dir() / name


# ---- the parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="antq",
        description="ANT adaptive 4-bit number formats (int, PoT, float, flint) on a PYNQ overlay: "
        "quantize models, pack flint tensors, run them on the accelerator or its emulation, and "
        "measure what it costs.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    backend_help = ("board, or emulation level ref/csim/rtl (default: $ANTQ_BACKEND, else auto = the board "
                    "if present, else csim)")

    p = sub.add_parser("formats", help="print the code tables of the ANT formats",
                       description="Print value, sign, mantissa and shift of every code.")
    p.add_argument("--kind", choices=formats.KINDS, help="only this kind")
    p.add_argument("--bits", type=int, default=4, choices=(0, *FORMAT_BITS), metavar="BITS",
                   help=f"bit width {FORMAT_BITS[0]}..{FORMAT_BITS[-1]} (default 4; 0 = all widths)")
    p.set_defaults(func=_cmd_formats)

    # models
    configs = ("int", "ip", "ip-f", "fip-f", "ant4-8", "nf4", "fp4", "int4-pc")
    p = sub.add_parser(
        "quantize", help="quantize a model with ANT and save the integer model (.antq)",
        description="Wrap every Conv2d/Linear with ANT fake quantizers, calibrate them on --calib data "
        "(type and clip value by MSE), optionally fine-tune (QAT), and write the exported integer model: "
        "packed codes, per-channel scales (BatchNorm folded in before calibration), bias and activation "
        "formats. It runs without fp32 weights (antq eval, antq.load).")
    p.add_argument("model", help="a zoo model (digits-cnn, digits-transformer, all-minilm-l6-v2 with "
                                 "antq[nlp]) or module:callable returning an nn.Module")
    p.add_argument("--calib", default=CALIB_DEFAULT, type=_calib_arg, help="number of training samples of "
                   "the model's "
                   "dataset, or a .npy file of inputs (default 256)")
    p.add_argument("--config", default="ip-f", choices=configs, help="candidate types (default ip-f = ANT); "
                   "nf4/fp4/int4-pc are software-only baselines and cannot be saved")
    p.add_argument("--bits", type=int, default=4, choices=FORMAT_BITS, metavar="BITS",
                   help=f"bit width {FORMAT_BITS[0]}..{FORMAT_BITS[-1]} (default 4; the accelerator runs 4 "
                   "and int8)")
    p.add_argument("--int8", nargs="+", default=None, metavar="LAYER", help="layers to keep in int8 "
                   "(ant4-8 defaults to the first and last)")
    p.add_argument("--auto-int8", type=COUNT, default=0, metavar="N", help="promote the N layers with the "
                   "highest 4-bit MSE to int8")
    p.add_argument("--override", action="append", default=[], type=_override_arg, metavar="LAYER=SPEC",
                   help="per-layer config, "
                   "'int8' or bit width; repeatable")
    p.add_argument("--dataset", help="dataset name for calibration, QAT and eval (default: the model's)")
    p.add_argument("--target", choices=("overlay",), default=None, help="refuse, before calibrating, formats "
                   "the accelerator cannot decode (e.g. flint6: use 4 bits or config int)")
    p.add_argument("--qat-epochs", type=COUNT, default=0, help="fine-tune this many epochs before export "
                   "(default 0)")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=1e-4, help="QAT learning rate (default 1e-4)")
    p.add_argument("-o", "--output", required=True, type=_output(example="model.antq"),
                   help="output .antq file (checked before calibration starts; missing folders are created)")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser(
        "eval", help="accuracy of a saved .antq model on its dataset's held-out split",
        description="Load a quantized model and run it on the host with exact integer GEMMs "
        "(antq.core.reference.gemm); print its per-layer formats and its top-1 accuracy.")
    p.add_argument("model", help="a .antq file written by antq quantize or antq.save")
    p.add_argument("--dataset", help="override the dataset recorded in the file")
    p.add_argument("--split", default="test", choices=("test", "train", "calib"), help="split (default test)")
    p.add_argument("--batch", type=POSITIVE, default=256, help="batch size (default 256)")
    p.add_argument("--limit", type=POSITIVE, default=None, metavar="N",
                   help="evaluate only the first N samples (default: all)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser(
        "report", help="accuracy per format (fp32, int, ip, ip-f, fip-f, ant4-8, NF4, FP4, int4) as "
        "markdown + PNGs",
        description="Load the zoo models, quantize them with every config at 4 bits as PTQ and after QAT, "
        "run the exported integer models, sweep the bit width, and write report.md with plots.")
    p.add_argument("-o", "--output", default="build/report", type=_output(folder=True),
                   help="output folder (default build/report)")
    p.add_argument("--quick", action="store_true", help="reduced run: --qat-steps steps of QAT per config")
    p.add_argument("--qat-epochs", type=COUNT, default=5, help="QAT epochs per config (default 5)")
    p.add_argument("--qat-steps", type=POSITIVE, default=5,
                   help="QAT steps per config with --quick (default 5)")
    p.add_argument("--lr", type=POSITIVE_FLOAT, default=1e-4, help="QAT learning rate (default 1e-4)")
    p.add_argument("--no-sentences", action="store_true", help="leave out the all-MiniLM-L6-v2 sentence-"
                   "embedding section (it needs antq[nlp] and takes most of the run)")
    p.set_defaults(func=_cmd_report)

    # overlay
    p = sub.add_parser(
        "run", help="accuracy of a .antq model on the overlay, checked against the software reference",
        description="Load a quantized model, run its dataset's held-out split on the overlay (a PYNQ board, "
        "or an emulation level) with the weights resident on the device, and check every prediction and "
        "logit against the bit-exact software reference. Exit status 1 if anything differs.")
    p.add_argument("model", help="a .antq file (antq quantize / antq.save)")
    p.add_argument("--backend", choices=BACKENDS, default=None, help=backend_help)
    p.add_argument("--limit", type=POSITIVE, default=None, metavar="N", help="only the first N samples")
    p.add_argument("--batch", type=POSITIVE, default=64, help="samples per accelerator batch (default 64)")
    p.set_defaults(func=_cmd_run)

    levels = ("host", *(b for b in BACKENDS if b != "auto"))
    p = sub.add_parser(
        "compare", help="find the first layer, tile and element where two levels disagree",
        description="Run the same inputs through two levels (host = antq.core.reference in numpy; ref/csim/"
        "rtl emulation; board) with full tracing, and print the first layer whose output differs, with the "
        "array tile and accumulator (m, n) for Conv/Linear layers and both values.")
    p.add_argument("model", help="a .antq file")
    p.add_argument("--a", default="host", choices=levels, help="first level (default host)")
    p.add_argument("--b", default="csim", choices=levels, help="second level (default csim)")
    p.add_argument("--limit", type=POSITIVE, default=8, metavar="N",
                   help="held-out samples to trace (default 8)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "demo", help="the main job: quantize the digits models with ANT and run them on the overlay",
        description="Load the digits CNN and digits transformer (shipped fp32 weights), quantize them with "
        "ANT (ip-f, 4-bit PTQ), run the held-out test set on the overlay (a PYNQ board, else the csim "
        "emulator), check every prediction against the software reference, and print accuracy, per-layer "
        "types and the latency breakdown. Exit status 1 if the overlay disagrees with the reference.")
    p.add_argument("--backend", choices=BACKENDS, default=None, help=backend_help)
    p.add_argument("--out", default=None, type=_output(folder=True),
                   help="output folder (default <build>/demo)")
    p.add_argument("--batch", type=POSITIVE, default=16, help="batch for the latency breakdown (default 16)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "bench", help="per-layer latency of a .antq model on the overlay (table, JSON, plot)",
        description="Run a batch of the model's held-out data on the overlay and split each layer's time "
        "into quantize+pack, copy in (flush), compute (the IP's cycle counter at --clock-mhz, or the DDR "
        "time at --ddr-gbps if longer), copy out (invalidate), unpack+rescale and host-only layers. In "
        "emulation the compute times are a projection of the board; on a board they are measured. Also "
        "prints MACs/cycle against the array peak, the cost of the same layers as int8 nibble passes, "
        "images/s, and the host<->device traffic per inference (bytes each way, results read), in all and "
        "per layer (the bytes each result brings back and its format: int64, codes, or none when the "
        "codes stay on the device). The run is "
        "chained (requantized outputs stay on the device); the same batch unchained (every int64 result "
        "read back) is measured in the same run, alternating with it run by run, as the baseline of the "
        "printed speedup.")
    p.add_argument("model", help="a .antq file")
    p.add_argument("--backend", choices=BACKENDS, default=None, help=backend_help)
    p.add_argument("--batch", type=POSITIVE, default=16, help="samples per inference (default 16)")
    p.add_argument("--clock-mhz", type=POSITIVE_FLOAT, default=None, help="PL clock for the projection "
                   "(default: the overlay's, 100 MHz)")
    p.add_argument("--ddr-gbps", type=POSITIVE_FLOAT, default=1.2, help="DDR bandwidth the IP sees, GB/s "
                   "(default 1.2, a Zynq-7000 HP port)")
    p.add_argument("--repeats", type=POSITIVE, default=3,
                   help="timed runs; each part is the best (default 3)")
    p.add_argument("--json", type=_output(suffixes=(".json",)), help="write the results as JSON here")
    p.add_argument("--plot", type=_output(suffixes=PLOT_SUFFIXES, example="latency.png"),
                   help="write a stacked-bar plot of the "
                   f"per-layer breakdown here ({', '.join(PLOT_SUFFIXES)})")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("overlay-info", help="load the overlay and print the IP's identity and registers",
                       description="Load the overlay and print what the IP reports and its register map.")
    p.add_argument("--backend", choices=BACKENDS, default=None, help=backend_help)
    p.set_defaults(func=_cmd_overlay_info)

    # micro-benchmarks
    p = sub.add_parser("bench-quant", help="time the vectorized ANT type/clip search against a loop",
                       description="Time the vectorized type/clip search against the per-(type, ratio) "
                       "loop on the same tensors and print the ratio (and that both choose the same).")
    p.add_argument("--full", action="store_true", help="the full sizes: a 4096x4096 weight and 8M "
                   "activations "
                   "(several minutes; the default 1024x1024 and 2M take well under one)")
    p.add_argument("--rows", type=POSITIVE, default=None, help="weight rows (output channels)")
    p.add_argument("--cols", type=POSITIVE, default=None, help="weight columns")
    p.add_argument("--act-elems", type=POSITIVE, default=None, help="activation tensor elements")
    p.set_defaults(func=_cmd_bench_quant)
    p = sub.add_parser("bench-calib", help="time calibrating all-MiniLM-L6-v2 against the calibration as it "
                                           "was",
                       description="Calibrate all-MiniLM-L6-v2 (antq[nlp]; every GEMM) on the first training "
                       "sentences with antq's calibration and with the calibration as it was before (full "
                       "quantization per tensor, a separate statistics pass, a second rounding in the "
                       "forward), "
                       "and print both times, the ratio and whether both chose the same types and clips.")
    p.add_argument("--sentences", type=POSITIVE, default=32, help="calibration sentences (default 32)")
    p.add_argument("--config", default="ip-f", choices=configs, help="config (default ip-f)")
    p.add_argument("--bits", type=int, default=4, choices=FORMAT_BITS, metavar="BITS",
                   help="bit width (default 4)")
    p.set_defaults(func=_cmd_bench_calib)
    p = sub.add_parser("bench-pack", help="pack/unpack and im2col throughput against np.copy",
                       description="Pack/unpack throughput in GB/s of 4- and 8-bit codes through the "
                       "container and accelerator layouts, and of the runtime's im2col, each against np.copy "
                       "of the same bytes.")
    p.add_argument("--rows", type=POSITIVE, default=4096)
    p.add_argument("--cols", type=POSITIVE, default=4096)
    p.set_defaults(func=_cmd_bench_pack)
    p = sub.add_parser("bench-gemm", help="GEMM MAC/s of the emulated (or real) overlay vs numpy int32",
                       description="GEMM throughput of each backend through the driver, against numpy's "
                       "int32 matmul on the same shape measured in the same run; weights resident, every "
                       "result checked.")
    p.add_argument("--shape", type=_number(int, 1, regmap.MAX_DIM), nargs=3, default=(256, 256, 256),
                   metavar=("M", "N", "K"))
    p.add_argument("--backends", type=_backend_list, default=("csim", "rtl"),
                   help="comma-separated: ref, csim, rtl, board (default csim,rtl)")
    p.add_argument("--a-fmt", default="flint4u", help="activation format, e.g. int4s, flint4u, int8s")
    p.add_argument("--w-fmt", default="flint4s", help="weight format")
    p.add_argument("--repeats", type=POSITIVE, default=3)
    p.add_argument("--board", choices=sorted(arch.BOARDS), default="pynq-z2",
                   help="board whose array and bus the emulation levels model (default pynq-z2)")
    p.add_argument("--array", type=_number(int, 1, 256), nargs=2, metavar=("R", "C"),
                   help="emulated array rows and columns (default: the board's)")
    p.add_argument("--json", type=_output(suffixes=(".json",)), metavar="FILE",
                   help="also write one row per backend (macs, cycles, utilization = "
                   "macs/(cycles*R*C), peak_macs_per_cycle, stages, clock_mhz, counters) to FILE")
    p.set_defaults(func=_cmd_bench_gemm)
    p = sub.add_parser("bench-rtl", help="array cycles/s of the Verilated core: C harness vs. cocotb",
                       description="Stream random flint jobs through the -O3 Verilated ant_core, "
                       "once under the C harness (the emulator's rtl level) and once driven by cocotb, "
                       "and print array cycles per second of each and their ratio.")
    p.add_argument("--rows", type=POSITIVE, default=16, help="array rows (default 16)")
    p.add_argument("--cols", type=POSITIVE, default=16, help="array columns (default 16)")
    p.add_argument("--k", type=POSITIVE, default=4096, help="steps per job (default 4096)")
    p.add_argument("--jobs", type=POSITIVE, default=100, help="jobs to stream (default 100)")
    p.add_argument("--no-cocotb", dest="cocotb", action="store_false",
                   help="skip the cocotb-driven baseline (it builds its own model, ~30 s the first time)")
    p.set_defaults(func=_cmd_bench_rtl)

    # toolchain
    p = sub.add_parser("golden", help="write the golden GEMM and epilogue vectors shared by the Python, HLS "
                       "and RTL tests",
                       description="Write the fixed golden GEMM cases and the requantization-epilogue cases "
                       "(antq.core.golden) to two files.")
    p.add_argument("-o", "--output", required=True, type=_output(),
                   help="GEMM file to write (the tests read tests/golden/gemm.txt)")
    p.add_argument("--epilogue", default=None, type=_output(),
                   help="epilogue file to write (default: epilogue.txt next to --output; the tests read "
                   "tests/golden/epilogue.txt)")
    p.set_defaults(func=_cmd_golden)
    p = sub.add_parser("hls", help="the HLS C++ without Vitis: generated header, g++ builds, C simulation",
                       description="config: write hls/ant_config.h from antq.core; build: compile a g++ "
                       "target; csim: build and run the C-simulation testbench (golden + random GEMMs).")
    hsub = p.add_subparsers(dest="hls_cmd", metavar="ACTION", required=True)
    hsub.add_parser("config", help="write hls/ant_config.h from antq.core.arch/formats/regmap")
    hp = hsub.add_parser("build", help="build a g++ target and print its path")
    hp.add_argument("target", choices=("csim", "rtl", "tb", "tb_deadlock"))
    hp = hsub.add_parser("csim", help="build and run the C-simulation testbench")
    hp.add_argument("--golden", default=None, help="a golden-vector file (e.g. tests/golden/gemm.txt)")
    hp.add_argument("--random", type=COUNT, default=200, help="random GEMMs to check (default 200)")
    hp.add_argument("--seed", type=COUNT, default=1)
    p.set_defaults(func=_cmd_hls)
    p = sub.add_parser("vitis", help="Vitis HLS flow of the ant_gemm IP for a board (2022.1-2024.2)",
                       description="Write the board's Vitis inputs into <build>/vitis/<board> (its "
                       "ant_config.h, the RTL-blackbox JSON with absolute paths and the core's Yosys "
                       "resources, the wrapper, golden vectors, settings.tcl) and run hls/run_hls.tcl with "
                       "vitis_hls -f (2022.1-2024.1) or vitis-run --mode hls --tcl (2024.2) up to STEP.")
    p.add_argument("--board", choices=sorted(arch.BOARDS), default="pynq-z2")
    p.add_argument("--step", choices=("csim", "synth", "cosim", "export"), default="export",
                   help="last step to run (default export: csim, synth, cosim, export)")
    p.add_argument("--prepare-only", action="store_true",
                   help="write the inputs and print their folder; do not run Vitis")
    p.set_defaults(func=_cmd_vitis)
    p = sub.add_parser("hwh", help="write the emulation overlay's .hwh from antq.core.regmap",
                       description="Write the .hwh the emulator loads (overlay/emulation/ant.hwh by "
                       "default).")
    p.add_argument("-o", "--output", default=None, type=_output(),
                   help="file to write (default: the packaged ant.hwh)")
    p.add_argument("--rows", type=POSITIVE, default=arch.ARRAY_ROWS)
    p.add_argument("--cols", type=POSITIVE, default=arch.ARRAY_COLS)
    p.set_defaults(func=_cmd_hwh)
    p = sub.add_parser("rtl-build", help="build the -O3 Verilated ant_core library (cached)",
                       description="Verilate overlay/rtl with -O3 and link the C harness into "
                       "<build>/rtl/libantcore_<R>x<C>.so (reused when nothing changed).")
    p.add_argument("--rows", type=POSITIVE, default=arch.ARRAY_ROWS,
                   help="array rows R (default from antq.core.arch)")
    p.add_argument("--cols", type=POSITIVE, default=arch.ARRAY_COLS, help="array columns C")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached library is current")
    p.set_defaults(func=_cmd_rtl_build)
    p = sub.add_parser("area", help="Yosys LUT/FF/CARRY4/DSP report of the PEs and arrays",
                       description="Synthesize the ANT PE, the int4/int8 baseline PEs, the decoder and "
                       "edge- vs. PE-decoded arrays with Yosys synth_xilinx (default mapping and -nodsp); "
                       "print the table and write the JSON.")
    p.add_argument("designs", nargs="*", help="design names (default: the PEs, the decoder and the 4x4 and "
                   "8x8 arrays, a few minutes on 2 cores; e.g. ant_decoder int4_pe)")
    p.add_argument("--full", action="store_true", help="every design, the 16x16 arrays too (10-30 minutes on "
                   "2 cores; what make docs measures)")
    p.add_argument("-o", "--output", default=None, type=_output(suffixes=(".json",)),
                   help="JSON output (default <build>/area.json)")
    p.add_argument("-j", "--jobs", type=POSITIVE, default=2, help="parallel yosys runs (default 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_area)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(f"antq {args.command}: error: this command needs {top}, which is not installed: "
              f"pip install 'antq[{EXTRAS[top]}]'", file=sys.stderr)
        return 1
    except (ValueError, OverflowError, OSError, TimeoutError, RuntimeError) as e:
        print(f"antq {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
