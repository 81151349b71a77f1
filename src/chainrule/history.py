"""The per-epoch record of a run: what :func:`chainrule.fit` returns and checkpoints store."""

from __future__ import annotations

import os

__all__ = ["History"]


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
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        keys = self.keys()
        metrics = [k for k in keys if k not in ("epoch", "loss", "lr", "time") and not k.startswith("val_")]
        fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6), squeeze=False)
        epochs = self["epoch"] if "epoch" in keys else list(range(1, len(self) + 1))
        for ax, name in zip(axes[0], ["loss", *metrics]):
            for k, style in ((name, "-"), (f"val_{name}", "--")):
                if k in keys:
                    ax.plot(epochs, self[k], style, label=k)
            ax.set_xlabel("epoch"); ax.set_title(name); ax.legend(); ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return os.fspath(path)


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
