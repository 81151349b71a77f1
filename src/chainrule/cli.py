"""The ``chainrule`` command. Each subcommand lives in the module that owns its feature and exposes
``configure(parser)`` and ``run(args) -> int``; this file only dispatches, so a bad argument is a
one-line error and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "train": ("chainrule.train", "train a model on a bundled or CSV dataset"),
    "evaluate": ("chainrule.train", "evaluate a trained run directory"),
    "predict": ("chainrule.train", "predict with a trained run directory"),
    "optimizers": ("chainrule.playground", "race optimizers on 2-D test functions and plot their paths"),
    "cost": ("chainrule.cost", "estimate (and measure) parameters, memory and compute of a network"),
    "analyze": ("chainrule.analysis", "feature importance, sample complexity and error correlation"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainrule", description="chainrule: neural networks on NumPy, the lecture made runnable.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=argparse.RawDescriptionHelpFormatter)
        try:
            mod = importlib.import_module(module)
        except ImportError:
            p.set_defaults(_missing=module)
            continue
        getattr(mod, f"configure_{name}", getattr(mod, "configure", lambda p: None))(p)
        p.set_defaults(_run=getattr(mod, f"run_{name}", getattr(mod, "run", None)))
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


if __name__ == "__main__":
    sys.exit(main())
