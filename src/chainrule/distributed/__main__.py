"""``mpiexec -n K python -m chainrule.distributed train ...`` is ``chainrule train --distributed ...``.

A script at the top of the stack: the library modules of this package never import the CLI."""

import sys

from chainrule.cli import main as _main

_argv = sys.argv[1:]
if _argv[:1] != ["train"]:
    print("usage: mpiexec -n K python -m chainrule.distributed train [chainrule train options]\n\n"
          "Runs `chainrule train` data-parallel over the K ranks: --batch-size is the global batch, rank 0\n"
          "prints and writes the run directory (--out), the other ranks compute. --resume works with any K.",
          file=sys.stderr)
    sys.exit(2)
sys.exit(_main([*_argv, "--distributed"]))
