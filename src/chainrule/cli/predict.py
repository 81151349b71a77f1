"""`chainrule predict`."""

from ..train import configure_predict as configure  # noqa: F401
from ..train import run_predict as run  # noqa: F401
