"""Self-contained HTML report pages (``report.html`` of ``optimize`` and ``auto``).

One page: headings, paragraphs, tables and inline PNG figures; no script, no stylesheet or
image fetched from anywhere. Written by hand with `html.escape`: a few tables and images need
no template engine (a new dependency).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeopt._fs import atomic_write_text

__all__ = ["Page", "decisions", "png"]

_STYLE = (
    "body{font-family:sans-serif;margin:24px;max-width:1200px}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
    "padding:3px 7px;text-align:left}th{background:#f0f0f0}.w{background:#fde2e2}"
    "img{max-width:100%}"
)


def png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG text, for `Page.image`."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


class Page:
    """An HTML page built part by part; every text is escaped."""

    def __init__(self, title: str) -> None:
        self.parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
        ]

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def para(self, text: str, bold: Sequence[str] = ()) -> None:
        """A paragraph; each of ``bold`` found in it is shown bold."""
        body = html.escape(text)
        for b in bold:
            body = body.replace(html.escape(b), f"<b>{html.escape(b)}</b>", 1)
        self.parts.append(f"<p>{body}</p>")

    def image(self, alt: str, png_text: str) -> None:
        self.parts.append(f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png_text}'>")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], marked: int | None = None
    ) -> None:
        """A table; row ``marked`` (an index) is highlighted."""
        e = html.escape
        self.parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
        for i, row in enumerate(rows):
            cls = " class='w'" if i == marked else ""
            self.parts.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        self.parts.append("</table>")

    def write(self, path: Path) -> Path:
        """Write the page (atomically)."""
        atomic_write_text(path, "\n".join([*self.parts, "</body></html>"]) + "\n")
        return path


def decisions(steps: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(pass, applied, what it decided) per step of a pipeline report: the layers kept in
    fp32, nodes quantized, channels pruned, or the pass's own counts."""
    rows = []
    for step in steps:
        details = step.get("details") or {}
        found = []
        accuracy = details.get("accuracy") or {}
        if accuracy.get("fp32_nodes") is not None:
            kept = accuracy["fp32_nodes"]
            found.append(f"{len(kept)} layer(s) kept in fp32: {', '.join(kept[:12])}")
        for key in ("quantized_nodes", "ratio", "channels_removed", "macs_removed", "pruned"):
            if key in details:
                found.append(f"{key.replace('_', ' ')}: {details[key]}")
        layers = details.get("layers") or details.get("per_layer")
        if isinstance(layers, dict):
            found += [f"{k}: {v}" for k, v in list(layers.items())[:12]]
        if not found:  # a pass with its own details (rewrites applied, ops converted)
            found = [f"{k}: {v}" for k, v in details.items() if isinstance(v, int | float | str)]
        rows.append((step["name"], "applied" if step.get("applied") else "no", "; ".join(found)))
    return rows
