"""The run report: one self-contained HTML page (inline CSS, SVG and script; no network).

:func:`build_report` takes the records as Airtable returns them (fields keyed
by Airtable names) and returns the page: the job's summary, a timeline with one
bar per client run (coloured by status, Start Time to End Time, details on
hover), the failed client runs with their errors, and optionally the history
of the job type (duration and failed clients per run, as a chart).

Every text from the base is shown visibly (control characters as stand-ins,
see :mod:`._text`) and HTML-escaped; the embedded script only adds the hover
tooltips and reads nothing but the page.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ._display import CellFormatter, human_duration, parse_airtable_time
from ._text import visible
from .schema import Schema

__all__ = ["STATUS_COLOURS", "build_report"]

STATUS_COLOURS: Mapping[str, str] = {
    "Running": "#3b82f6",
    "Completed": "#2e9d57",
    "Completed with Errors": "#d4a017",
    "Failed": "#d64545",
    "Cancelled": "#8a8f98",
    "Interrupted": "#e07b24",
}
_OTHER_COLOUR = "#7c5cc4"
_FAILED = frozenset({"Failed", "Cancelled", "Interrupted"})

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2430;margin:24px 32px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6ea;padding-bottom:4px}
.sub{color:#5b6270;margin-bottom:16px}.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;
font-size:12px;font-weight:600;vertical-align:middle}table.kv td{padding:2px 14px 2px 0;vertical-align:top}
table.kv td:first-child{color:#5b6270;white-space:nowrap}table.list{border-collapse:collapse}
table.list th,table.list td{border-bottom:1px solid #eceef1;padding:4px 12px 4px 0;text-align:left;vertical-align:top}
pre{background:#f6f7f9;padding:8px 10px;border-radius:6px;white-space:pre-wrap;margin:4px 0;font-size:12.5px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:11px;
height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}svg text{font:12px system-ui,sans-serif;fill:#1f2430}
svg .axis{stroke:#c9ced6}svg .grid{stroke:#eef0f3}svg .muted{fill:#5b6270}
#tooltip{position:fixed;pointer-events:none;background:#1f2430;color:#fff;padding:6px 9px;border-radius:5px;
font-size:12px;white-space:pre;display:none;z-index:9;max-width:520px}.none{color:#5b6270}
"""

_SCRIPT = """
(function(){var tip=document.createElement('div');tip.id='tooltip';document.body.appendChild(tip);
document.querySelectorAll('[data-tip]').forEach(function(el){
el.addEventListener('mousemove',function(e){tip.textContent=el.getAttribute('data-tip');tip.style.display='block';
tip.style.left=(e.clientX+14)+'px';tip.style.top=(e.clientY+14)+'px';});
el.addEventListener('mouseleave',function(){tip.style.display='none';});});})();
"""


def _esc(value: Any) -> str:
    return html.escape(visible(str(value), escapes=True), quote=True)


def _plain(value: Any, keep_newlines: bool = False) -> str:
    """Text for a tooltip (escaped by the caller): control characters as ``\\x1b``."""
    return visible(str(value), keep_newlines=keep_newlines, escapes=True)


def _tick(seconds: float, total: float) -> str:
    if total < 1:
        return f"{seconds:.2f}s"
    return f"{seconds:.1f}s" if total < 10 else human_duration(seconds)


def _shown(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _colour(status: Any) -> str:
    return STATUS_COLOURS.get(str(status), _OTHER_COLOUR)


def _badge(status: Any) -> str:
    return f'<span class="badge" style="background:{_colour(status)}">{_esc(status)}</span>'


def build_report(
    run_id: str,
    job: Mapping[str, Any] | None,
    clients: Sequence[Mapping[str, Any]],
    schema: Schema,
    metadata: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> str:
    """The report page for one run (``history``: job records of the same job type, any order)."""
    now = now or datetime.now(timezone.utc)
    tables = {t["name"]: t for t in metadata.get("tables", [])}
    job_format = CellFormatter(tables.get(schema.job.name), escapes=True)
    client_format = CellFormatter(tables.get(schema.client.name), escapes=True)
    job = job or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>jobtrace report {_esc(run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        _summary(run_id, job, schema, job_format, now),
        _timeline(clients, schema, client_format, job, now),
        _failures(clients, schema),
    ]
    if history is not None:
        parts.append(_history(history, schema, now, run_id))
    parts.append(f'<p class="none">Generated by jobtrace at {_shown(now)} from the base\'s records.</p>')
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _summary(run_id: str, job: Mapping[str, Any], schema: Schema, fmt: CellFormatter, now: datetime) -> str:
    names = schema.job.names
    if not job:
        return f"<h1>Job run {_esc(run_id)}</h1><p class='sub'>No job record (client runs only).</p>"
    status = job.get(names.status, "")
    started, ended = (
        parse_airtable_time(job.get(names.start_time or "")),
        parse_airtable_time(job.get(names.end_time or "")),
    )
    rows: list[tuple[str, str]] = [("Started", _esc(_shown(started))), ("Ended", _esc(_shown(ended)))]
    if started:
        took = human_duration(((ended or now) - started).total_seconds())
        rows.append(("Duration", _esc(took if ended else f"{took} so far")))
    for role, title in (
        ("clients_processed", "Clients processed"),
        ("clients_succeeded", "Clients succeeded"),
        ("clients_failed", "Clients failed"),
        ("progress", "Progress"),
        ("last_client_processed", "Last client"),
    ):
        name = schema.job.field_name(role)
        if name and job.get(name) not in (None, ""):
            rows.append((title, _esc(fmt(name, job[name]))))
    for name in schema.rollup_counters:
        if job.get(name) not in (None, ""):
            rows.append((name, _esc(fmt(name, job[name]))))
    titles = {title for title, _ in rows}
    for name in sorted(set(job) - set(schema.job.roles.values()) - set(schema.rollup_counters) - titles):
        shown = fmt(name, job[name])
        if shown:
            rows.append((name, _esc(shown)))
    table = "".join(f"<tr><td>{_esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
    out = [
        f"<h1>Job run {_esc(run_id)} {_badge(status)}</h1>",
        f'<div class="sub">{_esc(job.get(names.job_type or "", ""))}</div>',
        f'<table class="kv" id="summary">{table}</table>',
    ]
    error = job.get(names.errors or "")
    if error:
        out.append(f'<h2>Error</h2><pre id="job-error">{_esc(error)}</pre>')
    notes = job.get(names.notes or "")
    if notes:
        out.append(f'<h2>System notes</h2><pre id="notes">{html.escape(_plain(notes, keep_newlines=True))}</pre>')
    return "\n".join(out)


def _timeline(
    clients: Sequence[Mapping[str, Any]], schema: Schema, fmt: CellFormatter, job: Mapping[str, Any], now: datetime
) -> str:
    names = schema.client.names
    if not clients:
        return '<h2>Timeline</h2><p class="none">No client runs.</p>'
    spans = []
    job_end = parse_airtable_time(job.get(schema.job.names.end_time or "")) or now
    for f in clients:
        start = parse_airtable_time(f.get(names.start_time or ""))
        end = parse_airtable_time(f.get(names.end_time or "")) or (job_end if start else None)
        spans.append((f, start, end))
    starts = [s for _, s, _ in spans if s]
    ends = [e for _, _, e in spans if e]
    t0 = min([*starts, parse_airtable_time(job.get(schema.job.names.start_time or "")) or now]) if starts else now
    t1 = max([*ends, t0])
    total = max((t1 - t0).total_seconds(), 0.001)
    label_w, plot_w, row_h, top = 190, 760, 22, 28
    height = top + row_h * len(spans) + 10
    svg = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 20}" height="{height}" '
        f'role="img" aria-label="client runs over time">'
    ]
    for i in range(5):
        x = label_w + plot_w * i / 4
        svg.append(f'<line class="grid" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 6}"/>')
        tick = _tick(total * i / 4, total)
        svg.append(f'<text class="muted" x="{x:.1f}" y="{top - 12}" text-anchor="middle">+{tick}</text>')
    counters = sorted(schema.client.number_fields, key=list(schema.client.fields).index)
    for row, (f, start, end) in enumerate(spans):
        y = top + row * row_h
        client = f.get(names.client_id or "", "?")
        status = f.get(names.status, "")
        svg.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_esc(str(client)[:28])}</text>')
        if start is None:
            continue
        x = label_w + plot_w * (start - t0).total_seconds() / total
        w = max(plot_w * ((end or start) - start).total_seconds() / total, 3.0)
        details = [
            f"{_plain(client)}: {_plain(status)}",
            f"Start  {_shown(start)}",
            f"End    {_shown(parse_airtable_time(f.get(names.end_time or '')))}",
            f"Took   {human_duration(((end or start) - start).total_seconds())}",
        ]
        details += [f"{n}: {fmt(n, f[n])}" for n in counters if f.get(n) not in (None, "", 0)]
        error = f.get(names.errors or "")
        if error:
            details.append(f"Error: {_plain(error)[:300]}")
        tip = html.escape("\n".join(details), quote=True)
        failed = " failed" if status in _FAILED else ""
        svg.append(
            f'<rect class="bar{failed}" data-client="{_esc(client)}" data-status="{_esc(status)}" data-tip="{tip}" '
            f'x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" rx="3" fill="{_colour(status)}">'
            f"<title>{tip}</title></rect>"
        )
        if failed:
            svg.append(f'<text x="{x + w + 6:.1f}" y="{y + 15}" fill="{_colour(status)}">✕ {_esc(status)}</text>')
    svg.append("</svg>")
    seen = dict.fromkeys(str(f.get(names.status, "")) for f in clients)
    legend = "".join(f'<span><i style="background:{_colour(s)}"></i>{_esc(s)}</span>' for s in seen)
    return f"<h2>Timeline: {len(clients)} client run(s)</h2>\n<div class='legend'>{legend}</div>\n" + "".join(svg)


def _failures(clients: Sequence[Mapping[str, Any]], schema: Schema) -> str:
    names = schema.client.names
    failed = [f for f in clients if f.get(names.status) in _FAILED]
    if not failed:
        return '<h2>Failed client runs</h2><p class="none" id="failures">None.</p>'
    rows = "".join(
        f'<tr class="failure"><td>{_esc(f.get(names.client_id or "", "?"))}</td><td>{_badge(f.get(names.status))}</td>'
        f"<td><pre>{_esc(f.get(names.errors or '', '') or '')}</pre></td></tr>"
        for f in failed
    )
    return (
        f"<h2>Failed client runs ({len(failed)})</h2>"
        f'<table class="list" id="failures"><tr><th>Client</th><th>Status</th><th>Error</th></tr>{rows}</table>'
    )


def _history(history: Sequence[Mapping[str, Any]], schema: Schema, now: datetime, current: str) -> str:
    names = schema.job.names
    runs = []
    for f in history:
        start = parse_airtable_time(f.get(names.start_time or ""))
        if start is None:
            continue
        end = parse_airtable_time(f.get(names.end_time or ""))
        failed = f.get(names.clients_failed or "")
        runs.append((start, str(f.get(names.run_id, "")), ((end or now) - start).total_seconds(), end is None,
                     int(failed) if isinstance(failed, (int, float)) else 0, f.get(names.status, "")))  # fmt: skip
    runs.sort()
    if not runs:
        return '<h2>History</h2><p class="none">No earlier runs.</p>'
    plot_h, bar_w, gap, left, top = 140, 26, 10, 20, 26
    width = max(left + len(runs) * (bar_w + gap) + 80, 520)
    failed_base = top + 2 * plot_h + 48
    height = failed_base + 100
    top_duration = max(r[2] for r in runs) or 1.0
    top_failed = max(max(r[4] for r in runs), 1)
    svg = [
        f'<svg id="history" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="duration and failed clients per run">',
        f'<text class="muted" x="{left}" y="{top - 10}">Duration per run '
        f"(longest {human_duration(top_duration)})</text>",
        f'<text class="muted" x="{left}" y="{top + plot_h + 38}">Failed clients per run (most {top_failed})</text>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 20}" y2="{top + plot_h}"/>',
        f'<line class="axis" x1="{left}" y1="{failed_base}" x2="{width - 20}" y2="{failed_base}"/>',
    ]
    for i, (start, run_id, seconds, running, failed, status) in enumerate(runs):
        x = left + i * (bar_w + gap)
        h = max(plot_h * seconds / top_duration, 1.5)
        tip = html.escape(
            f"{_plain(run_id)}: {_plain(status)}\nStarted {_shown(start)}\n"
            f"Duration {human_duration(seconds)}{' so far' if running else ''}\nFailed clients {failed}",
            quote=True,
        )
        outline = ' stroke="#1f2430" stroke-width="2"' if run_id == current else ""
        svg.append(
            f'<rect class="run" data-run="{_esc(run_id)}" data-tip="{tip}" x="{x}" y="{top + plot_h - h:.1f}" '
            f'width="{bar_w}" height="{h:.1f}" fill="{_colour(status)}"{outline}><title>{tip}</title></rect>'
        )
        fh = (plot_h - 10) * failed / top_failed
        base = failed_base
        svg.append(
            f'<rect class="failed-count" data-run="{_esc(run_id)}" data-failed="{failed}" data-tip="{tip}" x="{x}" '
            f'y="{base - fh:.1f}" width="{bar_w}" height="{fh:.1f}" fill="#d64545"><title>{tip}</title></rect>'
        )
        label = _esc(run_id)
        svg.append(
            f'<text class="muted" transform="translate({x + bar_w / 2:.1f},{base + 12}) rotate(45)">{label}</text>'
        )
    svg.append("</svg>")
    return f"<h2>History: the last {len(runs)} run(s) of this job type</h2>\n" + "".join(svg)
