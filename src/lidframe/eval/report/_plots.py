"""The report's plots: matplotlib figures drawn on the Agg canvas (never pyplot: no global state, no
display needed), embedded as ``data:image/png;base64`` images with alt text.

Each function returns None when there is nothing to plot; :func:`img` then says so in a note.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lidframe.eval._metrics import confusion_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lidframe.eval._calibration_check import CalibrationCheck
    from lidframe.eval._evaluate import SourceEvaluation

__all__ = [
    "HEATMAP_LANGUAGES",
    "OUTSIDER_COLUMNS",
    "calibrated_reliability",
    "coverage",
    "distribution",
    "heatmap",
    "heatmap_table",
    "img",
    "reliability",
    "thresholds",
]

# The most frequent true languages shown as rows of the confusion heat map and table...
HEATMAP_LANGUAGES = 20
# ...and the most frequent answers outside them, each in a column of its own.
OUTSIDER_COLUMNS = 8
# Languages drawn in the distribution chart (the table lists all).
DISTRIBUTION_BARS = 30
CURVE_POINTS = 2000


def _pct(x: float) -> str:
    return "\u2013" if np.isnan(x) else f"{100 * x:.1f}%"


def img(fig: Figure | None, alt: str) -> str:
    if fig is None:
        return f'<p class="note">No plot ({html.escape(alt)}): nothing to plot.</p>'
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches the Agg canvas to the figure: no pyplot, no GUI backend
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def heatmap_table(s: SourceEvaluation) -> pd.DataFrame:
    """Counts of answers per true language (:func:`~lidframe.eval._metrics.confusion_table`) over
    the (up to) :data:`HEATMAP_LANGUAGES` most frequent true languages; empty when nothing is
    scored."""
    rows = s.rows
    if rows.empty or "truth" not in rows.columns:
        return pd.DataFrame()
    langs = [str(x) for x in s.per_language.index[s.per_language["support"] > 0]]
    return confusion_table(
        rows["truth"], rows["predicted"], langs[:HEATMAP_LANGUAGES], OUTSIDER_COLUMNS
    )


def heatmap(s: SourceEvaluation) -> Figure | None:
    """The confusion heat map: :func:`heatmap_table`, rows normalised to shares."""
    counts = heatmap_table(s)
    if counts.empty:
        return None
    langs, shown = [str(x) for x in counts.index], [str(x) for x in counts.columns]
    share = counts.to_numpy(dtype=float) / np.maximum(
        counts.to_numpy().sum(axis=1, keepdims=True), 1
    )
    fig = _figure(max(7.5, 2.5 + 0.28 * len(shown)), 6.5)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(shown)), shown, rotation=90, fontsize=8)
    ax.set_yticks(range(len(langs)), langs, fontsize=8)
    if len(shown) > len(langs):  # the answers outside the true languages, right of this line
        ax.axvline(len(langs) - 0.5, color="#c44e52", linewidth=1)
    ax.set_xlabel("predicted (right of the red line: outside the true languages shown)")
    ax.set_ylabel("true")
    ax.set_title(f"{s.name}: confusions (share of true language)", fontsize=10)
    for (r, c), v in np.ndenumerate(share):
        if v >= 0.01:
            color = "white" if v > 0.6 else "black"
            ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color=color)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def distribution(table: pd.DataFrame, source: str) -> Figure | None:
    """Rows per answered language of ``source`` (its ``{source} rows`` column of the distribution
    table), the most answered :data:`DISTRIBUTION_BARS`, with the true rows beside them when the
    table has them."""
    column = f"{source} rows"
    if table.empty or column not in table.columns:
        return None
    top = table.sort_values(column, ascending=False, kind="stable").head(DISTRIBUTION_BARS)
    top = top[top[column] > 0] if "true rows" not in top else top
    if top.empty:
        return None
    langs = [str(x) for x in top.index][::-1]
    y = np.arange(len(langs))
    fig = _figure(6.5, max(2.5, 0.9 + 0.24 * len(langs)))
    ax = fig.add_subplot()
    counts = top[column].to_numpy()[::-1]
    colors = ["#999999" if g == "und" or g.startswith("(") else "#4c72b0" for g in langs]
    if "true rows" in top.columns:
        ax.barh(y + 0.2, counts, height=0.4, color=colors, label=f"{source} answers")
        true = top["true rows"].to_numpy()[::-1]
        ax.barh(y - 0.2, true, height=0.4, color="#dd8452", label="true labels")
        fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    else:
        ax.barh(y, counts, height=0.7, color=colors)
    ax.set_yticks(y, langs, fontsize=8)
    ax.set_xlabel("rows")
    more = len(table) - len(top)
    suffix = f"; {more} more in the table" if more > 0 else ""
    ax.set_title(f"{source}: rows per answered language{suffix}", fontsize=10)
    return fig


def reliability(s: SourceEvaluation) -> Figure | None:
    table = s.reliability[s.reliability["rows"] > 0]
    if table.empty:
        return None
    fig = _figure(4.8, 4.6)
    ax = fig.add_subplot()
    width = table["bin_high"] - table["bin_low"]
    centres = (table["bin_low"] + table["bin_high"]) / 2
    ax.bar(centres, table["accuracy"], width=width * 0.9, color="#4c72b0", label="accuracy")
    ax.plot(table["confidence"], table["accuracy"], "o", color="#dd8452", label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="#888", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{s.name}: reliability (ECE {s.ece:.3f})", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    return fig


def coverage(s: SourceEvaluation, target: float, best: dict[str, float] | None) -> Figure | None:
    curve = s.coverage[s.coverage["rows"] > 0].sort_values("coverage")
    if curve.empty:
        return None
    if len(curve) > CURVE_POINTS:  # one point per distinct confidence: thin out for the plot
        curve = curve.iloc[np.linspace(0, len(curve) - 1, CURVE_POINTS).astype(int)]
    fig = _figure(4.8, 4.6)
    ax = fig.add_subplot()
    ax.plot(curve["coverage"], curve["accuracy"], color="#4c72b0", linewidth=1.5)
    ax.axhline(target, linestyle="--", color="#888", linewidth=1, label=f"target {_pct(target)}")
    if best is not None:
        ax.plot(
            [best["coverage"]],
            [best["accuracy"]],
            "o",
            color="#c44e52",
            zorder=3,
            label=f"threshold {best['threshold']:.3f} (coverage {_pct(best['coverage'])})",
        )
        ax.axvline(best["coverage"], linestyle=":", color="#c44e52", linewidth=1)
    low = float(np.nanmin(curve["accuracy"].to_numpy(dtype=float)))
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, min(low, target) - 0.05), 1.01)
    ax.set_xlabel("coverage (share of rows kept)")
    ax.set_ylabel("accuracy of kept rows")
    ax.set_title(f"{s.name}: accuracy vs coverage", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    return fig


def calibrated_reliability(check: CalibrationCheck) -> Figure | None:
    """The consensus's reliability diagram before and after the calibration: accuracy against
    mean probability per bin, each point sized by its rows, beside the diagonal."""
    before = check.before_reliability[check.before_reliability["rows"] > 0]
    after = check.after_reliability[check.after_reliability["rows"] > 0]
    if before.empty and after.empty:
        return None
    fig = _figure(4.8, 4.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="#888", linewidth=1, label="perfect calibration")
    for table, color, name, figures in (
        (before, "#dd8452", "before", check.before),
        (after, "#4c72b0", "after", check.after),
    ):
        if table.empty:
            continue
        sizes = 12 + 150 * table["rows"] / max(check.rows, 1)
        ax.plot(table["confidence"], table["accuracy"], "-", color=color, linewidth=1)
        ax.scatter(
            table["confidence"],
            table["accuracy"],
            s=sizes,
            color=color,
            zorder=3,
            label=f"{name} (ECE {figures['ece']:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("consensus probability (mean per bin)")
    ax.set_ylabel("accuracy")
    ax.set_title("consensus: reliability before and after calibration", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    return fig


def thresholds(check: CalibrationCheck, target: float) -> Figure | None:
    """Rows kept above each threshold of the calibrated probability: their share (coverage) and
    their accuracy (precision), with the lowest threshold whose kept rows reach ``target``."""
    curve = check.thresholds[check.thresholds["rows"] > 0]
    if curve.empty:
        return None
    best = check.threshold_for(target)
    fig = _figure(4.8, 4.6)
    ax = fig.add_subplot()
    ax.plot(curve["threshold"], curve["coverage"], color="#4c72b0", label="share of rows kept")
    ax.plot(curve["threshold"], curve["accuracy"], color="#55a868", label="accuracy of those kept")
    ax.axhline(target, linestyle="--", color="#888", linewidth=1, label=f"target {_pct(target)}")
    if best is not None:
        ax.axvline(best["threshold"], linestyle=":", color="#c44e52", linewidth=1)
        ax.plot(
            [best["threshold"]],
            [best["accuracy"]],
            "o",
            color="#c44e52",
            zorder=3,
            label=f"threshold {best['threshold']:.3f}: keeps {_pct(best['coverage'])}",
        )
        title = f"{_pct(target)} precision from threshold {best['threshold']:.3f}"
    else:
        title = f"{_pct(target)} precision: not reached"
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold on the calibrated consensus probability")
    ax.set_ylabel("share kept / accuracy of kept")
    ax.set_title(f"consensus: accuracy against coverage\n{title}", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    return fig


def behaviour(partitions: pd.DataFrame) -> Figure | None:
    """The job's answer over its partitions, in partition order: the shares of its three most
    answered languages, the agreement (several models), the ``und`` rate and the mean probability
    of the answer."""
    if partitions.empty:
        return None
    frame = partitions.sort_values("partition")
    x = frame["partition"].to_numpy()
    answered = frame["answered"].to_numpy(dtype=float)
    heard = answered + frame["und"].to_numpy(dtype=float)
    rows = np.maximum(frame["rows"].to_numpy(dtype=float), 1)
    totals: dict[str, int] = {}
    for langs in frame["langs"]:
        for lang, n in langs.items():
            totals[lang] = totals.get(lang, 0) + n
    top = sorted(totals, key=lambda k: (-totals[k], k))[:3]
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    with np.errstate(invalid="ignore", divide="ignore"):
        for lang in top:
            share = np.array([langs.get(lang, 0) for langs in frame["langs"]]) / answered
            ax.plot(x, share, marker=".", label=f"share of {lang}")
        if frame["agree"].sum() > 0:
            ax.plot(x, frame["agree"].to_numpy() / heard, marker=".", color="black",
                    label="agreement")  # fmt: skip
        ax.plot(x, frame["und"].to_numpy() / rows, marker=".", linestyle=":", label="und rate")
        ax.plot(x, frame["prob_sum"].to_numpy() / answered, marker=".", linestyle="--",
                label="mean probability")  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("partition (manifest order)")
    ax.set_title("the answer, partition by partition", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return fig


def expected_accuracy(partitions: pd.DataFrame) -> Figure | None:
    """The accuracy the job's answer promised (its mean probability over the rows answered with a
    language: the expected accuracy when calibrated) against the one it had on the labelled rows,
    partition by partition in partition order and accumulated over the job; None without labels."""
    if partitions.empty or "labelled" not in partitions or partitions["labelled"].sum() == 0:
        return None
    frame = partitions.sort_values("partition")
    x = frame["partition"].to_numpy()
    prob_sum = frame["prob_sum"].to_numpy(dtype=float)
    answered = frame["answered"].to_numpy(dtype=float)
    correct = frame["correct"].to_numpy(dtype=float)
    labelled = frame["labelled"].to_numpy(dtype=float)
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    with np.errstate(invalid="ignore", divide="ignore"):
        ax.plot(x, prob_sum / answered, marker=".", linestyle="none", color="tab:blue",
                alpha=0.5, label="expected, per partition")  # fmt: skip
        ax.plot(x, correct / labelled, marker="x", linestyle="none", color="tab:orange",
                alpha=0.5, label="measured, per partition")  # fmt: skip
        ax.plot(x, np.cumsum(prob_sum) / np.cumsum(answered), color="tab:blue",
                label="expected, so far")  # fmt: skip
        ax.plot(x, np.cumsum(correct) / np.cumsum(labelled), color="tab:orange",
                label="measured, so far")  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("partition (manifest order)")
    ax.set_ylabel("accuracy")
    ax.set_title("expected (mean probability of the answer) against measured accuracy", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return fig
