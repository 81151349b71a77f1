"""torch.utils-shaped helpers: ``chainrule.utils.data`` is ``torch.utils.data`` (Dataset, DataLoader...)."""

from . import data

__all__ = ["data"]
