"""`chainrule cost`."""

from ..cost import configure_cost as configure  # noqa: F401
from ..cost import run_cost as run  # noqa: F401
