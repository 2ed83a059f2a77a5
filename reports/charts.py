"""Charts for the reports: Altair specs rendered to SVG by vl-convert, embedded as data: images.

An SVG inside ``<img>`` can neither run scripts nor load anything, whatever text ends up in it,
and the report's CSP allows images from ``data:`` only. Every chart comes with a table or text
equivalent in the template; ``alt`` says what the chart shows and where its numbers are.
"""

from __future__ import annotations

import base64
import functools
import logging
from dataclasses import dataclass

import altair as alt
import pandas as pd

log = logging.getLogger(__name__)

FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
# Colour-blind-safe categorical palette (Okabe-Ito), dark enough on white for lines and marks.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C6D31"]
WIDTH = 820


@dataclass
class Chart:
    """A rendered chart: ``src`` is a data: URI (empty when rendering failed), ``alt`` its text."""

    src: str
    alt: str
    width: int = 0
    height: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.src)


def _config(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    return (
        chart.configure(font=FONT, background="white")
        .configure_axis(labelColor="#222222", titleColor="#222222", labelFontSize=11, titleFontSize=12,
                        gridColor="#e4e4e4")
        .configure_legend(labelColor="#222222", titleColor="#222222", labelFontSize=11, titleFontSize=12,
                          labelLimit=220)
        .configure_header(labelColor="#222222", titleColor="#222222", labelFontSize=12, titleFontSize=12,
                          labelLimit=220)
        .configure_title(color="#111111", fontSize=13)
        .configure_view(stroke="#cccccc")
    )


DATA = "table"


def _data() -> alt.Data:
    """A reference to the chart's rows, attached after ``to_dict`` (Altair would deep-copy and
    validate every row otherwise, which is most of the time a chart takes)."""
    return alt.Data(name=DATA)


def spec_of(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec of a chart built on ``_data()`` (rows are attached by ``render``)."""
    return _config(chart).to_dict()


def render(spec: dict, alt_text: str, rows: list[dict]) -> Chart:
    """SVG of a Vega-Lite spec with ``rows`` as a data: URI; on failure an empty Chart (the
    table still shows). vl-convert releases the GIL, so charts may render on several threads."""
    try:
        import vl_convert

        svg = vl_convert.vegalite_to_svg({**spec, "datasets": {DATA: rows}})
    except Exception as exc:  # a chart must never break a report
        log.warning("chart not rendered: %s: %s", type(exc).__name__, exc)
        return Chart("", alt_text)
    width = height = 0
    head = svg[:400]
    for name in ("width", "height"):
        marker = f' {name}="'
        if marker in head:
            try:
                value = int(float(head.split(marker, 1)[1].split('"', 1)[0]))
            except ValueError:
                value = 0
            if name == "width":
                width = value
            else:
                height = value
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Chart(f"data:image/svg+xml;base64,{encoded}", alt_text, width, height)


def _records(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ISO strings (Vega parses them), so no timezone or dtype surprises."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]) or out[column].map(
            lambda v: hasattr(v, "isoformat")
        ).any():
            out[column] = out[column].map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
    return out


def volume_chart(frame: pd.DataFrame, unit: str, platforms: list[str]) -> Chart:
    """Stacked bars: posts per ``unit`` (column ``bucket``) and platform (column ``n``)."""
    return render(_volume_spec(unit, tuple(platforms)),
                  f"Bar chart of posts per {unit} and platform. The table below gives the same numbers.",
                  _records(frame).to_dict("records"))


@functools.lru_cache(maxsize=64)
def _volume_spec(unit: str, platforms: tuple[str, ...]) -> dict:
    chart = (
        alt.Chart(_data())
        .mark_bar()
        .encode(
            x=alt.X("bucket:O", title=None, sort="ascending",
                    axis=alt.Axis(labelAngle=-40, labelExpr=_label_expr(unit), labelOverlap=True)),
            y=alt.Y("n:Q", title="posts", stack="zero"),
            color=alt.Color("platform_label:N", title="platform", sort=list(platforms),
                            scale=alt.Scale(range=PALETTE)),
        )
        .properties(width=WIDTH - 140, height=180)
    )
    return spec_of(chart)


def _label_expr(unit: str) -> str:
    # Buckets are ISO strings; show them compactly.
    if unit == "hour":
        return "slice(datum.value, 11, 16)"
    if unit == "month":
        return "slice(datum.value, 0, 7)"
    return "slice(datum.value, 0, 10)"


def share_chart(frame: pd.DataFrame, key: str, unit: str, platforms: list[str], keys: list[str],
                what: str) -> Chart:
    """Small multiples: one row per platform, one column per ``key`` value (framing or stance);
    line and points for the share, a vertical rule for its 95% interval."""
    rows = _records(frame[["period", "platform_label", key, "share", "ci_low", "ci_high", "n_posts"]]
                    ).to_dict("records")
    return render(
        _share_spec(key, unit, tuple(platforms), tuple(keys), what),
        f"Small-multiple line charts of the share of classified posts per {unit} for each {what} "
        f"(columns) and platform (rows), with vertical bars for 95% Wilson intervals. "
        f"The table below gives the same numbers.",
        rows,
    )


@functools.lru_cache(maxsize=64)
def _share_spec(key: str, unit: str, platforms: tuple[str, ...], keys: tuple[str, ...], what: str) -> dict:
    # Periods are categories (only non-empty ones are shown, joined in order), matching the
    # shift test, which compares each period with the previous non-empty one.
    base = alt.Chart().encode(
        x=alt.X("period:O", title=None, sort="ascending", axis=alt.Axis(labelAngle=-40, labelOverlap=True)),
    )
    colour = alt.Color(f"{key}:N", title=what, sort=list(keys), scale=alt.Scale(range=PALETTE), legend=None)
    rules = base.mark_rule(opacity=0.55, strokeWidth=2).encode(
        y=alt.Y("ci_low:Q", title="share of posts", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y2="ci_high:Q",
        color=colour,
    )
    line = base.mark_line(point=alt.OverlayMarkDef(size=30, filled=True), strokeWidth=1.8).encode(
        y=alt.Y("share:Q", scale=alt.Scale(domain=[0, 1])), color=colour,
    )
    n_cols = max(1, len(keys))
    cell_width = max(120, min(260, (WIDTH - 60) // n_cols - 30))
    chart = (
        alt.layer(rules, line, data=_data())
        .properties(width=cell_width, height=90)
        .facet(
            row=alt.Row("platform_label:N", title=None, sort=list(platforms),
                        header=alt.Header(labelAngle=0, labelAlign="left", labelAnchor="start", labelOrient="top",
                                          labelFontWeight="bold", labelPadding=4)),
            column=alt.Column(f"{key}:N", title=None, sort=list(keys), header=alt.Header(labelFontWeight="bold")),
        )
        .resolve_scale(x="shared")
    )
    return spec_of(chart)


def topic_chart(frame: pd.DataFrame, unit: str, labels: list[str]) -> Chart:
    """Lines: posts per period for the largest topics (columns period, topic_label, n_posts)."""
    return render(_topic_spec(unit, tuple(labels)),
                  f"Line chart of posts per {unit} in the largest topics. The table below gives the same numbers.",
                  _records(frame).to_dict("records"))


@functools.lru_cache(maxsize=64)
def _topic_spec(unit: str, labels: tuple[str, ...]) -> dict:
    chart = (
        alt.Chart(_data())
        .mark_line(point=alt.OverlayMarkDef(size=30, filled=True))
        .encode(
            x=alt.X("period:O", title=None, sort="ascending", axis=alt.Axis(labelAngle=-40, labelOverlap=True)),
            y=alt.Y("n_posts:Q", title="posts"),
            color=alt.Color("topic_label:N", title="topic", sort=list(labels), scale=alt.Scale(range=PALETTE),
                            legend=alt.Legend(orient="bottom", columns=2, labelLimit=300)),
        )
        .properties(width=WIDTH - 60, height=180)
    )
    return spec_of(chart)


def transition_chart(frame: pd.DataFrame, keys: list[str]) -> Chart:
    """Heat map: parent framing (rows) × reply framing (columns), cell = share of replies."""
    data = frame[["parent_framing", "reply_framing", "n", "share"]].copy()
    data["label"] = [f"{s:.0%} (n={n})" for s, n in zip(data["share"], data["n"])]
    return render(_transition_spec(tuple(keys)),
                  "Heat map of how often a reply to a post with one framing carries each framing. "
                  "The table below gives the same numbers.", data.to_dict("records"))


@functools.lru_cache(maxsize=64)
def _transition_spec(keys: tuple[str, ...]) -> dict:
    rects = alt.Chart().mark_rect(stroke="white").encode(
        x=alt.X("reply_framing:N", title="reply framing", sort=list(keys), axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("parent_framing:N", title="parent framing", sort=list(keys)),
        color=alt.Color("share:Q", title="share of replies", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                        legend=alt.Legend(format="%")),
    )
    text = alt.Chart().mark_text(fontSize=12).encode(
        x=alt.X("reply_framing:N", sort=list(keys)), y=alt.Y("parent_framing:N", sort=list(keys)), text="label:N",
        color=alt.condition("datum.share > 0.55", alt.value("white"), alt.value("#111111")),
    )
    chart = alt.layer(rects, text, data=_data()).properties(
        width=min(WIDTH - 200, 110 * max(1, len(keys))), height=38 * max(1, len(keys))
    )
    return spec_of(chart)
