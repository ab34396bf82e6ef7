"""A report as one self-contained HTML page: a scorecard, charts, the table behind each chart, drill-downs.

Charts are drawn with matplotlib and inlined as SVG (text kept as text, so the reader's browser
renders it and it can be searched and copied). Every chart is followed by the table it was drawn
from; every figure has its items listed, each naming its instance, so a reader can go from a
number to ``qproc show ID`` and to the events behind it. Targets stand beside the figures;
misses are marked red. The page prints on A4 (the browser's "Save as PDF" makes the PDF).
"""

import html
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import matplotlib
from matplotlib import ticker
from matplotlib.figure import Figure as Canvas
from matplotlib.patches import Patch

from .kpis import Figure
from .reports import Report

# Text stays text in the SVG (the browser draws it); Chinese labels are measured with a CJK font when one
# is installed, and only approximately otherwise, which is all the layout needs.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "qproc", "font.size": 10,
                            "font.family": "sans-serif",
                            "font.sans-serif": ["DejaVu Sans", "Noto Sans CJK SC", "Source Han Sans SC",
                                                "WenQuanYi Zen Hei", "Microsoft YaHei", "Droid Sans Fallback"],
                            "axes.spines.top": False, "axes.spines.right": False})
BLUE, ORANGE, GREY, RED, GREEN = "#2f6db5", "#e08a1e", "#8a8f98", "#c62828", "#2e7d32"
ROWS_SHOWN_OPEN = 0  # drill-down lists start folded; the summary line says how many items they hold


@dataclass(frozen=True)
class _Cells:
    """How table cells are written: times in the report's zone; instance numbers linked when a link is given."""

    tz: tzinfo | None
    link: str | None = None
    departments: dict[str, str] = field(default_factory=dict)  # key → printed name


def render(report: Report, unfolded: bool = False, link: str | None = None) -> str:
    """The whole page as HTML text.

    ``unfolded`` opens every list of items (for printing: a PDF shows them all). ``link`` makes
    each instance number a link, ``{id}`` standing for it (e.g. ``http://qproc.local/instances/{id}``
    for the web application's instance page).
    """
    cells = _Cells(report.period.start.tzinfo, link, report.source.get("departments", {}))
    figures = {f.key: f for f in report.figures}
    body = [_header(report), _scorecard(report)]
    for title, keys, charts in _sections(report):
        parts = [f"<h2>{_e(title)}</h2>"]
        for chart in charts:
            parts.append(chart())
        for key in keys:
            parts.append(_figure_block(figures[key], cells))
        body.append(f"<section>{''.join(parts)}</section>")
    body.append(_appendix(report))
    page = PAGE.format(title=_e(report.title), style=STYLE, body="\n".join(body))
    return page.replace("<details>", "<details open>") if unfolded else page


# --- sections --------------------------------------------------------------------------------

def _sections(report: Report) -> list[tuple[str, list[str], list[Callable[[], str]]]]:
    figure = report.figure
    trend = report.trend
    targets = report.source["targets"]
    return [
        ("Complaints received 客诉数量", ["complaints_received", "repeat_complaints", "pieces_per_occurrence"],
         [lambda: _trend_chart("Complaints received and closed per month", trend,
                               [("received", "received", BLUE), ("closed", "closed", ORANGE)], unit="count")]),
        ("Response and closure 回复及结案时间", ["quality_notice", "response_time", "closure_time"],
         [lambda: _trend_chart("Median days from receipt, per month", trend,
                               [("response_median_days", "to reply", BLUE),
                                ("closure_median_days", "to close", ORANGE)],
                               unit="days", lines=[(targets.get("reply_deadline_days"), "reply deadline", BLUE),
                                                   (targets.get("closure_deadline_days"), "closure deadline", ORANGE)]),
          lambda: _trend_chart("Share on time, per month", trend,
                               [("response_on_time", "replied on time", BLUE),
                                ("closure_on_time", "closed on time", ORANGE)],
                               unit="share", lines=[(targets.get("target_on_time_share"), "target", GREY)])]),
        ("Steps on time by department 各部门及时率", ["on_time_tasks", "escalations"],
         [lambda: _department_chart(figure("on_time_tasks"), report.source.get("departments", {}))]),
        ("Corrective and preventive action 纠正预防措施", ["capa_on_time", "capa_effectiveness"],
         [lambda: _trend_chart("CAPAs effective at first verification, per month", trend,
                               [("capa_effective_first_time", "effective first time", GREEN)], unit="share")]),
        ("Failure causes 失效原因", ["failure_causes"],
         [lambda: _pareto_chart(figure("failure_causes")), lambda: _quarter_chart(figure("failure_causes"))]),
        ("Customer satisfaction 顾客满意度", ["satisfaction"],
         [lambda: _trend_chart("Average satisfaction score (1-5), per month", trend,
                               [("satisfaction", "average score", GREEN)], unit="score",
                               lines=[(targets.get("target_satisfaction_score"), "target", GREY)])]),
        ("Overdue items 逾期事项", ["overdue"], [lambda: _aging_chart(figure("overdue"))]),
    ]


def _header(report: Report) -> str:
    p, tz = report.period, report.period.start.tzinfo
    last = (p.end - timedelta(days=1)).astimezone(tz)
    return (f"<header><h1>{_e(report.title)}</h1>"
            f"<p class='meta'>Period {_e(p.label)}: {p.start:%Y-%m-%d} to {last:%Y-%m-%d}, "
            f"time zone {_e(report.time_zone)}. Figures as of {_moment(report.as_of, tz)}: events after that are not "
            f"counted, so this report does not change when run again.</p>"
            f"<p class='meta'>How to trace a figure: every table lists its items by <b>instance</b> number — "
            f"<code>qproc show N</code> shows the instance, <code>qproc history N</code> its events; "
            f"<code>#a→#b</code> are the numbers of the events read in that history.</p></header>")


def _scorecard(report: Report) -> str:
    rows = []
    for f in report.figures:
        status = {True: "<td class='met'>met</td>", False: "<td class='miss'>missed</td>"}.get(f.met, "<td>–</td>")
        rows.append(f"<tr><td><a href='#{f.key}'>{_e(_title(report, f.key))}</a></td><td>{_e(f.period)}</td>"
                    f"<td class='num'>{_e(_headline(f))}</td><td>{_e(f.target_text)}</td>{status}</tr>")
    return ("<section><h2>Scorecard 指标汇总</h2><table class='score'><tr><th>KPI</th><th>period</th><th>figure</th>"
            f"<th>target</th><th>status</th></tr>{''.join(rows)}</table></section>")


def _title(report: Report, key: str) -> str:
    return next(d["title"] for d in report.definitions if d["key"] == key)


def _headline(f: Figure) -> str:
    value = _value(f.value, f.unit)
    stats = f.stats
    if f.value is not None and f.unit == "share" and "count" in stats:
        good = stats.get("on_time", stats.get("effective", 0))
        return f"{value} ({good} of {stats['count']})"
    if f.key == "satisfaction" and stats.get("responses"):
        return f"{value} ({stats['responses']} answers)"
    return value


def _value(value: Any, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "score":
        return f"{value:.2f}"
    return str(value)


def _figure_block(f: Figure, cells: _Cells) -> str:
    parts = [f"<h3 id='{f.key}'>{_e(f.title)} <span class='period'>{_e(f.period)}</span></h3>",
             f"<p class='headline {_status_class(f.met)}'>{_e(_headline(f))}"
             + (f" — target {_e(f.target_text)}" if f.target_text else "") + "</p>"]
    stats = _stats_line(f)
    if stats:
        parts.append(f"<p class='stats'>{_e(stats)}</p>")
    tables = [f"<div><h4>{_e(name.capitalize())}</h4>{_table(rows, cells)}</div>"
              for name, rows in f.tables.items() if rows]
    if tables:
        parts.append(f"<div class='tables'>{''.join(tables)}</div>")
    if f.rows:
        items = "the item" if len(f.rows) == 1 else f"the {len(f.rows)} items"
        parts.append(f"<details><summary>Show {items} counted</summary>{_table(f.rows, cells)}</details>")
    elif not f.tables or not any(f.tables.values()):
        parts.append("<p class='empty'>Nothing to count in this period.</p>")
    return "".join(parts)


def _stats_line(f: Figure) -> str:
    s = f.stats
    if "median_hours" in s and s.get("count"):
        scale, unit = (1, "h") if f.key == "quality_notice" else (24, "d")
        return (f"{s['count']} complaints: median {s['median_hours'] / scale:.1f} {unit}, "
                f"P90 {s['p90_hours'] / scale:.1f} {unit}; {s['late']} late.")
    if f.key == "repeat_complaints" and s.get("window_months") is not None:
        return (f"A repeat: the same customer complained about the same product within {s['window_months']} "
                "months before.")
    if f.key == "satisfaction":
        rate = _value(s["response_rate"], "share")
        return (f"{s['satisfied']} of {s['responses']} answers satisfied. Response rate {rate}: "
                f"{s['answered']} of the {s['asked']} surveys asked in the period were answered.")
    return ""


def _status_class(met: bool | None) -> str:
    return {True: "met", False: "miss"}.get(met, "")


# --- tables ----------------------------------------------------------------------------------

_BAD = {"on_time": False, "over_limit": True, "effective": False, "satisfied": False}


def _table(rows: list[dict[str, Any]], cells: _Cells) -> str:
    columns = list(rows[0])
    head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in columns)
    body = []
    for row in rows:
        bad = any(row.get(column) is flag for column, flag in _BAD.items() if column in row)
        line = "".join(_cell(column, row[column], cells) for column in columns)
        body.append(f"<tr class='bad'>{line}</tr>" if bad else f"<tr>{line}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cell(column: str, value: Any, cells: _Cells) -> str:
    if column in ("instance", "earlier") and value is not None:
        ids = value if isinstance(value, list) else [value]
        return "<td>" + ", ".join(_instance(i, cells.link) for i in ids) + "</td>"
    if column == "department":
        return f"<td>{_e(cells.departments.get(value, value))}</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, datetime):
        return f"<td class='time'>{_moment(value, cells.tz)}</td>"
    if isinstance(value, date):
        return f"<td class='time'>{value.isoformat()}</td>"
    if isinstance(value, float):
        text = f"{value:.1%}" if column.endswith("share") else f"{value:g}"
        return f"<td class='num'>{text}</td>"
    if isinstance(value, int):
        return f"<td class='num'>{value}</td>"
    return f"<td>{_e('' if value is None else str(value))}</td>"


def _instance(instance_id: int, link: str | None) -> str:
    if link:
        return f"<a class='id' href='{_e(link.replace('{id}', str(instance_id)))}'>{instance_id}</a>"
    return f"<span class='id' title='qproc show {instance_id}'>{instance_id}</span>"


def _moment(value: datetime, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


# --- charts ----------------------------------------------------------------------------------

def _svg(canvas: Canvas, caption: str) -> str:
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        canvas.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    return f"<figure>{svg[svg.index('<svg'):]}<figcaption>{_e(caption)}</figcaption></figure>"


def _canvas(height: float = 3.0) -> tuple[Canvas, Any]:
    canvas = Canvas(figsize=(9.4, height))
    return canvas, canvas.add_subplot()


def _trend_chart(title: str, trend: list[dict], series: list[tuple[str, str, str]], unit: str,
                 lines: list[tuple[float | None, str, str]] = ()) -> str:
    if len(trend) < 2:
        return ""
    canvas, ax = _canvas()
    months = [row["month"] for row in trend]
    for key, label, colour in series:
        values = [row[key] for row in trend]
        ax.plot(months, [v if v is not None else float("nan") for v in values], marker="o", color=colour, label=label)
    for value, label, colour in lines:
        if value is not None:
            ax.axhline(value, color=colour, linestyle="--", linewidth=1, label=label)
    if unit == "share":
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    elif unit == "score":
        ax.set_ylim(1, 5.2)
    else:
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=unit == "count"))
    ax.set_ylabel({"count": "complaints", "days": "days", "share": "share", "score": "score"}[unit])
    ax.set_title(title, loc="left")
    ax.legend(frameon=False, fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="x", labelrotation=30 if len(months) > 8 else 0)
    return _svg(canvas, f"{title}. Data: the monthly table below.") + _trend_table(trend, series, unit)


def _trend_table(trend: list[dict], series: list[tuple[str, str, str]], unit: str) -> str:
    rows = [{"month": row["month"], **{label: _value(row[key], unit) for key, label, _ in series}} for row in trend]
    return f"<details><summary>Data behind the chart (by month)</summary>{_table(rows, _Cells(None))}</details>"


def _department_chart(f: Figure, names: dict[str, str]) -> str:
    rows = f.tables.get("by department") or []
    if not rows:
        return ("<p class='empty'>No step completed in this period carries a due time, so on-time rates cannot be "
                "measured yet. Due times come from the procedures' deadlines.</p>")
    canvas, ax = _canvas(0.8 + 0.4 * len(rows))
    labels = [names.get(r["department"], r["department"]) for r in rows]
    shares = [r["share"] or 0 for r in rows]
    colours = [RED if f.target is not None and s < f.target else BLUE for s in shares]
    ax.barh(labels, shares, color=colours)
    for y, row in enumerate(rows):
        ax.text(row["share"] or 0, y, f" {row['share']:.0%} ({row['on_time']}/{row['count']})", va="center", fontsize=8)
    if f.target is not None:
        ax.axvline(f.target, color=GREY, linestyle="--", linewidth=1, label=f"target {f.target:.0%}")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_xlim(0, 1.25)  # room for the labels right of the bars
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.invert_yaxis()
    ax.set_title("Steps completed by their due time, by department", loc="left")
    return _svg(canvas, "Red: below target. Data: the 'by department' table below.")


def _pareto_chart(f: Figure) -> str:
    rows = f.tables.get("by cause") or []
    if not rows:
        return ""
    canvas, ax = _canvas(3.2)
    causes = [r["cause"] for r in rows]
    counts = [r["count"] for r in rows]
    single_quarter = len({r["quarter"] for r in f.tables["by quarter"]}) == 1
    over = [single_quarter and f.target is not None and c > f.target for c in counts]
    ax.bar(causes, counts, color=[RED if o else BLUE for o in over])
    ax.set_ylabel("CAPAs opened")
    if single_quarter and f.target is not None:
        _limit_line(ax, f.target, f"limit {f.target} a quarter")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.tick_params(axis="x", labelrotation=20 if len(causes) > 5 else 0)
    share_axis = ax.twinx()
    share_axis.plot(causes, [r["cumulative_share"] for r in rows], color=ORANGE, marker="o")
    share_axis.set_ylim(0, 1.05)
    share_axis.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    share_axis.spines["right"].set_visible(True)
    ax.set_title(f"Pareto of failure causes, {f.period}", loc="left")
    return _svg(canvas, "Bars: CAPAs by failure cause (red: over the limit); line: cumulative share. "
                        "Data: the 'by cause' table below.")


def _quarter_chart(f: Figure) -> str:
    rows = f.tables.get("by quarter") or []
    quarters = sorted({r["quarter"] for r in rows})
    if len(quarters) < 2:
        return ""
    causes = [r["cause"] for r in f.tables["by cause"]]
    canvas, ax = _canvas(3.2)
    width = 0.8 / len(quarters)
    palette = [BLUE, ORANGE, GREEN, GREY]
    for i, quarter in enumerate(quarters):
        counts = {r["cause"]: r["count"] for r in rows if r["quarter"] == quarter}
        xs = [c + i * width for c in range(len(causes))]
        values = [counts.get(cause, 0) for cause in causes]
        over = [f.target is not None and v > f.target for v in values]
        ax.bar(xs, values, width, color=palette[i % 4], edgecolor=[RED if o else "white" for o in over],
               hatch=["///" if o else "" for o in over], linewidth=1)
    if f.target is not None:
        _limit_line(ax, f.target, f"limit {f.target}")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(causes))], causes)
    handles = [Patch(color=palette[i % 4], label=quarter) for i, quarter in enumerate(quarters)]
    handles.append(Patch(facecolor="white", edgecolor=RED, hatch="///", label="over the limit"))
    ax.legend(handles=handles, frameon=False, fontsize=8, ncols=len(handles))
    ax.set_title("Failure causes by quarter", loc="left")
    return _svg(canvas, "Hatched, red edge: more than the limit in one quarter. Data: the 'by quarter' table below.")


def _limit_line(ax, value: float, label: str) -> None:
    """A dashed limit line labelled at its left end, clear of the bars' legend."""
    ax.axhline(value, color=RED, linestyle="--", linewidth=1)
    ax.annotate(label, (0, value), xycoords=("axes fraction", "data"), xytext=(4, 3), textcoords="offset points",
                color=RED, fontsize=8)


def _aging_chart(f: Figure) -> str:
    table = f.tables.get("by age") or []
    if not f.rows:
        return ""
    canvas, ax = _canvas(2.6)
    labels = [r["bucket"] for r in table]
    bottom = [0] * len(table)
    for kind, colour in (("complaint", BLUE), ("CAPA", ORANGE), ("step", GREY)):
        values = [r[kind] for r in table]
        ax.bar(labels, values, bottom=bottom, color=colour, label=kind)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("items")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"Overdue open items by days overdue, {f.period}", loc="left")
    return _svg(canvas, "Data: the 'by age' table below.")


def _appendix(report: Report) -> str:
    definitions = "".join(f"<dt>{_e(d['title'])}</dt><dd>{_e(d['definition'])}</dd>" for d in report.definitions)
    source = report.source
    targets = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in source["targets"].items())
    return (f"<section class='appendix'><h2>Definitions 指标定义</h2><dl>{definitions}</dl>"
            f"<h2>Source 数据来源</h2><p>Computed from {source['events_read']} events of {source['instances_read']} "
            f"instances ({source['complaints']} complaints, {source['capas']} CAPAs) recorded before "
            f"{_moment(report.as_of, report.period.start.tzinfo)}. Deadlines and targets from "
            f"{_e(source['settings_from'])} (processes/settings.yaml as deployed); a complaint is measured against "
            f"the settings of the version it started on.</p><table><tr><th>setting</th><th>value</th></tr>{targets}"
            f"</table></section>")


STYLE = """
body { font-family: "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; color: #1d2330;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; font-size: 14px; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { border-bottom: 2px solid #2f6db5; padding-bottom: .2rem;
margin-top: 2.2rem; } h3 { margin: 1.4rem 0 .2rem; } h4 { margin: .8rem 0 .2rem; font-size: .95rem; color: #3d4452; }
.meta { color: #555; margin: .2rem 0; } .period { color: #777; font-weight: normal; font-size: .85rem; }
table { border-collapse: collapse; margin: .3rem 0 .6rem; font-size: .85rem; }
details table { font-size: .78rem; }
th, td { border: 1px solid #d6d9de; padding: .2rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f3f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; } tr.bad td { background: #fdecea; }
td.met { background: #e6f4ea; color: #1e6b2f; font-weight: 600; }
td.miss { background: #fdecea; color: #b3261e; font-weight: 600; }
.headline { font-size: 1.15rem; font-weight: 600; margin: .2rem 0; } .headline.miss { color: #b3261e; }
.headline.met { color: #1e6b2f; } .stats { margin: .2rem 0; color: #333; } .empty { color: #777; font-style: italic; }
.id { font-family: monospace; background: #eef2f8; padding: 0 .25rem; border-radius: 3px; }
figure { margin: .8rem 0; } figure svg { width: 100%; height: auto; }
.tables { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
figcaption { color: #555; font-size: .8rem; } details { margin: .3rem 0 .8rem; }
summary { cursor: pointer; color: #2f6db5; }
dt { font-weight: 600; margin-top: .5rem; } dd { margin-left: 1rem; }
@media print { body { margin: 0; max-width: none; } section { break-inside: avoid-page; } summary { color: #1d2330; } }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{style}</style></head>
<body>
{body}
</body></html>
"""
