"""`chainrule train`."""

from ..train import configure_train as configure  # noqa: F401
from ..train import run_train as run  # noqa: F401
