"""The timeline of a verify run as one HTML file with an inline SVG (no dependency):
a row per client process, a mark per operation (green ok, grey failed, orange
unknown), a band per fault, a red line at each anomaly. Hover for details."""

from __future__ import annotations

import html
from pathlib import Path

from .checks import Report
from .history import History

COLORS = {"ok": "#2a9d4b", "fail": "#9a9a9a", "unknown": "#f08c00", "info": "#3a6fd8"}


def write_timeline(hist: History, report: Report, path: Path, title: str) -> None:
    t0 = hist.t0
    rows: dict[str, list[tuple[float, float, str, str]]] = {}
    for o in hist.ops():
        end = o.complete if o.complete is not None else o.invoke + 0.05
        rows.setdefault(f"register {o.process}", []).append(
            (o.invoke, end, o.outcome, o.describe()))
    faults = []
    for e in hist.events():
        if e.wl == "fault":
            faults.append(e)
            continue
        if e.wl == "final":
            continue
        end = e.complete if e.complete is not None else e.invoke + 0.05
        rows.setdefault(f"{e.wl} {e.process}", []).append(
            (e.invoke, end, e.outcome, e.describe()))
    times = [t for r in rows.values() for a, b, *_ in r for t in (a, b)]
    times += [f.invoke for f in faults] + [f.data.get("end", f.invoke) for f in faults]
    t_end = max(times, default=t0 + 1)
    width, left, rh = 1400, 190, 12
    scale = (width - left - 10) / max(t_end - t0, 1e-3)
    height = 50 + rh * len(rows) + 30

    def x(t: float) -> float:
        return left + (t - t0) * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="10">']
    for n, f in enumerate(faults):
        x0, x1 = x(f.invoke), x(f.data.get("end", f.invoke + 0.1))
        label = html.escape(f"{f.kind} {f.data.get('what', '')}")
        out.append(f'<rect x="{x0:.1f}" y="20" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{height - 40}" fill="#ffd6d6" opacity="0.6"><title>{label}'
                   f'</title></rect><text x="{x0:.1f}" y="{9 + 9 * (n % 2)}" fill="#b00">{label}</text>')
    for i, (name, ops) in enumerate(sorted(rows.items())):
        y = 40 + i * rh
        out.append(f'<text x="2" y="{y + 9}">{html.escape(name[:30])}</text>')
        for a, b, outcome, desc in ops:
            out.append(f'<rect x="{x(a):.1f}" y="{y + 1}" width="{max(x(b) - x(a), 1):.1f}" '
                       f'height="{rh - 3}" fill="{COLORS.get(outcome, "#000")}">'
                       f'<title>{html.escape(desc)}</title></rect>')
    for an in report.anomalies:
        if an.at is None:
            continue
        xa = x(an.at)
        out.append(f'<line x1="{xa:.1f}" y1="20" x2="{xa:.1f}" y2="{height - 20}" '
                   f'stroke="red" stroke-width="2"><title>{html.escape(str(an))}</title></line>')
    for s in range(0, int(t_end - t0) + 1, 5):
        out.append(f'<text x="{x(t0 + s):.1f}" y="{height - 5}">{s}s</text>')
    out.append("</svg>")
    anomalies = "".join(f"<li>{html.escape(str(a))}</li>" for a in report.anomalies[:200])
    undecided = "".join(f"<li>{html.escape(u)}</li>" for u in report.undecided)
    page = (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>verdict: <b>{report.verdict}</b></p>"
            f"<p>green ok, grey failed, orange unknown (no reply), blue an observation; "
            f"red bands are faults, red lines anomalies (hover for details)</p>"
            + "".join(out)
            + (f"<h2>anomalies</h2><ul>{anomalies}</ul>" if anomalies else "")
            + (f"<h2>undecided</h2><ul>{undecided}</ul>" if undecided else ""))
    path.write_text(page)
