"""`chainrule optimizers`."""

from ..playground import configure_optimizers as configure  # noqa: F401
from ..playground import run_optimizers as run  # noqa: F401
