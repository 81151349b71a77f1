"""Plain-text formatting shared by the reports (cost, analysis, Newton's cost warning): byte
counts in binary units, numbers as they read in a table, and aligned text grids; the same tables as
HTML for Jupyter's rich display (``_repr_html_``). No chainrule imports: every layer may use it."""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Sequence


def human_bytes(n: float) -> str:
    """``1536 -> '1.50 KiB'``: binary units (1 KiB = 1024 bytes), labelled."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def number(v, digits: int = 4) -> str:
    """A value as a table cell: floats to ``digits`` significant digits ('nan' for NaN), the rest as str."""
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):  # float, np.float32...
        return "nan" if math.isnan(v) else f"{float(v):.{digits}g}"
    return str(v)


def is_numeric(s: str) -> bool:
    """Whether a cell reads as a number (numbers are right-aligned)."""
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def grid(head: Sequence[str], rows: Sequence[Sequence[object]], align: str = "first-left") -> str:
    """An aligned text table with a dashed rule under ``head``.

    ``align='first-left'``: the first column left-aligned, the others right-aligned;
    ``align='numbers-right'``: cells that read as numbers right-aligned, the others left-aligned.
    """
    cells = [[str(c) for c in r] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(r: list[str]) -> str:
        if align == "first-left":
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        return "  ".join(c.rjust(w) if is_numeric(c) else c.ljust(w) for c, w in zip(r, widths)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def html_table(head: Sequence[object], rows: Sequence[Sequence[object]], caption: str | None = None) -> str:
    """A ``<table>``: ``head`` as header cells, every cell escaped; numbers stay as the text tables print them."""
    def row(cells, tag):
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(row(r, "td") for r in rows)
    return f"<table>{cap}<thead>{row(head, 'th')}</thead><tbody>{body}</tbody></table>"


def html_pre(text: str) -> str:
    """Monospaced text, escaped (listings whose alignment matters)."""
    return f"<pre>{html.escape(text)}</pre>"
