"""The ``chainrule`` command. Each subcommand is a module of this package with ``configure(parser)``
and ``run(args) -> int``; this file only dispatches, so a bad argument is a one-line error and a
non-zero exit, never a traceback. A command's module is imported only when it is listed or run."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module in this package, one-line help). Each module defines configure(parser) and run(args).
COMMANDS = {
    "train": ("train", "train a model on a bundled or CSV dataset"),
    "evaluate": ("evaluate", "evaluate a trained run directory"),
    "predict": ("predict", "predict with a trained run directory"),
    "optimizers": ("optimizers", "race optimizers on 2-D test functions and plot their paths"),
    "cost": ("cost", "estimate (and measure) parameters, memory and compute of a network"),
    "analyze": ("analyze", "feature importance, sample complexity and error correlation"),
    "export": ("export", "export a trained run's model to ONNX"),
    "playground": ("playground", "the lecture, live: an interactive page in the browser, driven by the engine"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__
    parser = _Parser(prog="chainrule", description="chainrule: neural networks on NumPy, the lecture made runnable.")
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=argparse.RawDescriptionHelpFormatter)
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ImportError as e:  # an optional extra is missing
            p.set_defaults(_missing=e.name or module)
            continue
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "_missing", None) or getattr(args, "_run", None) is None:
        print(f"chainrule {args.command}: not available (module {getattr(args, '_missing', '?')} "
              "missing; install with pip install 'chainrule[all]')", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"chainrule {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chainrule {args.command}: interrupted", file=sys.stderr)
        return 130

