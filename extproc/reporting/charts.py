"""The report's charts, drawn here as SVG to sit inline in its HTML (and so its PDF).

matplotlib is imported when a chart is drawn, not before: it takes about a second to
load, and only a report needs it. Text is drawn as paths, so nothing a chart shows is
markup, whatever its labels hold.
"""

from __future__ import annotations

import datetime
import io
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Bars in the refusals chart; the rest are in its table.
_MOST_RULES = 15
# What precedes the <svg> element (an XML declaration, a doctype), and its metadata.
_PROLOGUE = re.compile(r"\A.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def activity(buckets: list[dict[str, Any]], bucket: str, since_us: int,
             until_us: int) -> str | None:
    """Records and refusals per hour or day over the period, as an SVG element (None:
    no records)."""
    if not buckets:
        return None
    figure = _figure(7.5, 2.6)
    from matplotlib import dates, ticker

    axes = figure.subplots()
    axes.xaxis_date(datetime.UTC)
    starts = dates.date2num([_moment(b["start_us"]) for b in buckets])
    axes.set_xlim(dates.date2num(_moment(since_us)), dates.date2num(_moment(until_us)))
    axes.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    width = 1 / 24 * 0.9 if bucket == "hour" else 0.9
    axes.bar(starts, [b["records"] - b["refused"] for b in buckets], width, align="edge",
             label="passed", color="#4c78a8")
    axes.bar(starts, [b["refused"] for b in buckets], width, align="edge", label="refused",
             bottom=[b["records"] - b["refused"] for b in buckets], color="#e45756")
    axes.set_ylabel(f"records per {bucket}")
    axes.legend(loc="upper left", frameon=False)
    figure.autofmt_xdate()
    return _svg(figure)


def refusals(by_rule: dict[str, int]) -> str | None:
    """The rules that refused most, as horizontal bars (None: no refusals)."""
    if not by_rule:
        return None
    top = list(by_rule.items())[:_MOST_RULES]
    figure = _figure(7.5, 0.6 + 0.3 * len(top))
    axes = figure.subplots()
    axes.barh([rule for rule, _ in reversed(top)], [n for _, n in reversed(top)],
              color="#e45756")
    from matplotlib import ticker

    axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axes.set_xlabel("refusals")
    return _svg(figure)


def _moment(us: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.UTC)


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Figure) -> str:
    import matplotlib

    out = io.StringIO()
    # Set for this drawing alone: the admin API's process may draw other things.
    with matplotlib.rc_context({"svg.fonttype": "path",
                                "svg.hashsalt": "tollgate"}):  # the same chart, the same ids
        figure.savefig(out, format="svg", metadata={"Date": None})
    return _METADATA.sub("", _PROLOGUE.sub("", out.getvalue(), count=1), count=1)
