"""Reports as documents: one list of blocks rendered as Markdown and as HTML,
table cells, figures on the Agg canvas, and files written atomically (a
temporary file beside the target, then a rename). Used by stress tests and
model selection. No Ray."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["atomic_figure", "atomic_json", "atomic_write", "fmt", "new_figure", "to_html", "to_markdown"]


def fmt(value, kind: str = "num") -> str:
    """A table cell: ``pct`` percent, ``int``, ``num`` 3 decimals; n/a for None/NaN/inf."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if kind == "pct":
        return f"{v:.2%}"
    if kind == "int":
        return f"{int(round(v))}"
    return f"{v:.3f}"


def to_markdown(blocks: list[tuple]) -> str:
    """Blocks: ``("h", level, text)``, ``("p", text)``, ``("ul", [items])``,
    ``("table", headers, rows)``, ``("img", path, alt)``, ``("code", text)``."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
        elif kind == "code":
            out.append("```\n" + block[1] + "\n```")
    return "\n\n".join(out) + "\n"


def to_html(blocks: list[tuple], title: str) -> str:
    """The same blocks as a standalone HTML page (images by relative path)."""
    from html import escape

    body = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{escape(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            body.append(f'<p><img src="{escape(block[1])}" alt="{escape(block[2])}"></p>')
        elif kind == "code":
            body.append(f"<pre>{escape(block[1])}</pre>")
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "th{background:#eee}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    )
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title><style>{style}</style></head>\n<body>\n' + "\n".join(body) + "\n</body></html>\n"


def _inline(text: str) -> str:
    """HTML of a line with Markdown ``**bold**`` and ``code`` spans."""
    import re
    from html import escape

    s = escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it."""
    from rllib_algospace.artifacts import write_atomically

    raw = data.encode() if isinstance(data, str) else data
    return write_atomically(path, lambda fh: fh.write(raw))


def atomic_json(path: str | os.PathLike, document) -> Path:
    """``document`` as JSON (NaN/inf -> null, numpy -> Python), written atomically."""
    from rllib_algospace.evaluation import json_safe

    return atomic_write(path, json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")


def atomic_figure(path: str | os.PathLike, figure, dpi: int = 100) -> Path:
    import io

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    return atomic_write(path, buf.getvalue())


def new_figure(rows: int = 1, cols: int = 1, size=(11, 5), **kw):
    """A bare matplotlib Figure on the Agg canvas (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, **kw)
