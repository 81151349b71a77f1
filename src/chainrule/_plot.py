"""Matplotlib for files: pyplot on a file backend (never a window, no display needed) and saving a
figure. matplotlib is optional and imported only when something is drawn. No chainrule imports:
every layer may use it."""

from __future__ import annotations

import os
from typing import Any

FILE_BACKENDS = ("agg", "pdf", "svg", "ps", "cairo")


def pyplot():
    """``matplotlib.pyplot``, switched to Agg unless a file backend is already in use."""
    import matplotlib

    if matplotlib.get_backend().lower() not in FILE_BACKENDS:
        try:
            matplotlib.use("Agg")
        except Exception:  # noqa: BLE001 - a backend already in use keeps working for savefig
            pass
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Any, dpi: int = 100) -> Any:
    """Lay out ``fig``, write it to ``path`` (a file name, or a binary file object: PNG) and close it
    (so a loop of plots does not pile up figures); returns the path (the file object as given)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi, **({} if isinstance(path, (str, os.PathLike)) else {"format": "png"}))
    plt.close(fig)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
