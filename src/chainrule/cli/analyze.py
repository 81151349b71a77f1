"""`chainrule analyze`."""

from ..analysis import configure_analyze as configure  # noqa: F401
from ..analysis import run_analyze as run  # noqa: F401
