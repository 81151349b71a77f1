"""The per-epoch record of a run: what :func:`chainrule.fit` returns and checkpoints store."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._plot import pyplot, save

__all__ = ["History", "plot_runs"]


class History:
    """Per-epoch logs: ``loss`` (the objective minimised, penalty included), ``val_loss``, metrics
    (``accuracy``, ``val_accuracy``, ...), ``lr`` (during the epoch) and ``time`` (seconds).

    ``history["val_loss"]`` is the list over epochs; ``history.epochs`` the list of per-epoch dicts.
    """

    def to_pandas(self):
        """The per-epoch logs as a ``pandas.DataFrame``, one row per epoch, indexed by ``epoch`` (columns
        ``loss``, ``accuracy``, ``val_loss``, ..., ``lr``, ``time``). Needs pandas."""
        return to_dataframe(self)

    def __init__(self, epochs: list[dict] | None = None):
        self.epochs: list[dict] = list(epochs or [])

    def append(self, logs: dict) -> None:
        self.epochs.append(dict(logs))

    def __getitem__(self, key: str) -> list:
        if not any(key in e for e in self.epochs):
            raise KeyError(f"no {key!r} in the history; it has {self.keys()}")
        return [e.get(key) for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.epochs:
            seen.update(dict.fromkeys(e))
        return list(seen)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        epochs = d.get("epochs", []) if isinstance(d, dict) else None
        if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
            raise ValueError(f"History.from_dict: expected {{'epochs': [dict, ...]}}, got {d!r:.100}")
        return cls(epochs)

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        return f"History({len(self)} epochs, last={ {k: v for k, v in last.items() if k != 'time'} })"

    def plot(self, path: str | os.PathLike) -> str:
        """Write loss and metric curves (train and validation) to a PNG; returns the path.
        An empty history (``epochs=0``) is refused: there is nothing to draw."""
        if not self.epochs:
            raise ValueError("History.plot: the history is empty (no epoch was trained)")
        return save(self._figure(), path, dpi=100)

    def _repr_png_(self) -> bytes | None:  # Jupyter: the curves of plot(), inline; nothing for an empty history
        if not self.epochs or "loss" not in self.keys():
            return None
        import io
        buf = io.BytesIO()
        save(self._figure(), buf, dpi=80)
        return buf.getvalue()

    def _figure(self):
        """One panel for the loss and one per metric, train solid and validation dashed."""
        plt = pyplot()
        keys = self.keys()
        metrics = [k for k in keys if k not in ("epoch", "loss", "lr", "time") and not k.startswith("val_")]
        fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6), squeeze=False)
        for ax, name in zip(axes[0], ["loss", *metrics]):
            _curves(ax, self, name)
            ax.set_title(name); ax.legend(); ax.grid(alpha=0.3)
        return fig


def plot_runs(runs: Mapping[str, History], path: str | os.PathLike, key: str = "loss") -> str:
    """Compare runs that differ in one setting (regularisation, optimizer, ...): one panel per run,
    side by side on a shared y axis, with ``key`` (train, solid) and ``val_<key>`` (dashed) per epoch.
    Writes a PNG and returns its path; a run without ``key`` is a ``KeyError`` naming it."""
    if not runs:
        raise ValueError("plot_runs: no runs to draw")
    for name, h in runs.items():
        if key not in h.keys():
            raise KeyError(f"plot_runs: run {name!r} has no {key!r}; it has {h.keys()}")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(3 * len(runs), 2.6), sharey=True, squeeze=False)
    for ax, (name, h) in zip(axes[0], runs.items()):
        _curves(ax, h, key, labels=("train", "validation"))
        ax.set_title(name, fontsize=9)
    axes[0, 0].set_ylabel(key)
    axes[0, 0].legend(fontsize=8)
    return save(fig, path, dpi=80)


def _curves(ax, h: History, key: str, labels: tuple[str, str] | None = None) -> None:
    """``key`` solid and ``val_<key>`` dashed against the epoch, on one axis."""
    keys, (train, val) = h.keys(), labels or (key, f"val_{key}")
    epochs = h["epoch"] if "epoch" in keys else list(range(1, len(h) + 1))
    for k, style, label in ((key, "-", train), (f"val_{key}", "--", val)):
        if k in keys:
            ax.plot(epochs, h[k], style, label=label)
    ax.set_xlabel("epoch")


def to_dataframe(history: History | dict | list):
    """A History, its ``to_dict()`` or its list of epoch dicts as a ``pandas.DataFrame`` (see :meth:`History.to_pandas`)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError('History.to_pandas needs pandas: pip install pandas (or "chainrule[logs]")') from e
    epochs = history.epochs if isinstance(history, History) else history.get("epochs", []) if isinstance(
        history, dict) else list(history)
    df = pd.DataFrame(list(epochs))
    return df.set_index("epoch") if "epoch" in df.columns else df
