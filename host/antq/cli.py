"""The ``antq`` command line. Each concept module adds its own subcommands via ``add_commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import arch, formats

# Modules that contribute subcommands (each defines ``add_commands(subparsers)``).
COMMAND_MODULES: tuple[str, ...] = (
    "antq.bench", "antq.rtl", "antq.area", "antq.report", "antq.overlay", "antq.runtime",
)


def _print_formats(a: argparse.Namespace) -> None:
    for f in formats.all_formats():
        if (a.kind is None or f.kind == a.kind) and (a.bits == 0 or f.bits == a.bits):
            print(formats.table(f))
            print()
    cfg = arch.DEFAULT
    print(f"accelerator: {cfg.rows}x{cfg.cols} PEs, {cfg.bus_bits}-bit bus, "
          f"{cfg.acc_bits}-bit accumulators; decodes every 4-bit format, int8 as nibble passes")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="antq",
        description="ANT adaptive 4-bit number formats (int, PoT, float, flint) on a PYNQ overlay: "
        "quantize models, pack flint tensors, run them on the accelerator or its emulation, and "
        "measure what it costs.",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("formats", help="print the code tables of the ANT formats",
                       description="Print value, sign, mantissa and shift of every code.")
    p.add_argument("--kind", choices=formats.KINDS, help="only this kind")
    p.add_argument("--bits", type=int, default=4, help="bit width (default 4; 0 = all widths)")
    p.set_defaults(func=_print_formats)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)  # an int exit status, or anything else (e.g. benchmark rows) for success
        return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except (ValueError, OverflowError, OSError, TimeoutError, RuntimeError) as e:
        print(f"antq {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
