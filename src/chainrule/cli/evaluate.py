"""`chainrule evaluate`."""

from ..train import configure_evaluate as configure  # noqa: F401
from ..train import run_evaluate as run  # noqa: F401
