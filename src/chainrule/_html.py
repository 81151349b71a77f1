"""HTML for Jupyter's rich display (``_repr_html_``): the same cells as the text tables, escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence


def table(head: Sequence[object], rows: Sequence[Sequence[object]], caption: str | None = None) -> str:
    """A ``<table>``: ``head`` as header cells, every cell escaped; numbers stay as the text tables print them."""
    def row(cells, tag):
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(row(r, "td") for r in rows)
    return f"<table>{cap}<thead>{row(head, 'th')}</thead><tbody>{body}</tbody></table>"


def pre(text: str) -> str:
    """Monospaced text, escaped (listings whose alignment matters)."""
    return f"<pre>{html.escape(text)}</pre>"
