"""Plotly figures over latents (no streamlit here: pages pass these to st.plotly_chart)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# Ten colours that stay apart for colour-blind readers (Okabe-Ito + two)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
           "#56B4E9", "#F0E442", "#000000", "#999999", "#882255"]


def marker_trace(x: float, y: float) -> dict:
    """The current z as a one-point WebGL trace (WebGL canvases draw above SVG traces)."""
    return {"type": "scattergl", "x": [float(x)], "y": [float(y)], "mode": "markers", "name": "current z",
            "marker": {"size": 18, "symbol": "x", "color": "red", "line": {"width": 2, "color": "white"}},
            "hoverinfo": "skip"}


def move_marker(fig: go.Figure, x: float, y: float) -> go.Figure:
    """Move the current-z marker (the last trace) in place.

    Only two numbers are validated; building or copying the figure would
    re-validate all 10,000+ points (about 50 ms on this machine's CPU, against 5).
    """
    fig.data[-1].x = [float(x)]
    fig.data[-1].y = [float(y)]
    return fig


def z_from_selection(selection: dict, z, mu: np.ndarray, dx: int, dy: int | None) -> np.ndarray:
    """The z a scatter selection asks for.

    A clicked point jumps to that image's whole posterior mean (customdata holds
    its row index); a box sets the two plotted dimensions to the box's centre and
    keeps the others.
    """
    new = np.array(z, dtype=np.float32).copy()
    if selection.get("box"):
        box = selection["box"][0]
        new[dx] = float(np.mean(box["x"]))
        if dy is not None:
            new[dy] = float(np.mean(box["y"]))
        return new
    point = selection["points"][0]
    idx = point.get("customdata")
    if isinstance(idx, list):
        idx = idx[0] if idx else None
    if idx is not None and 0 <= int(idx) < len(mu):
        return np.array(mu[int(idx)], dtype=np.float32)
    new[dx] = float(point["x"])
    if dy is not None:
        new[dy] = float(point["y"])
    return new


def latent_scatter(points: np.ndarray, labels: np.ndarray, class_names: list[str],
                   marker=None, size: int = 420, axis_titles=("z[0]", "z[1]")) -> go.Figure:
    """WebGL scatter of 2-D points coloured by label, with an optional marker for the current z."""
    fig = go.Figure()
    for c in np.unique(labels):
        sel = np.flatnonzero(labels == c)
        name = class_names[c] if c < len(class_names) else str(c)
        # customdata carries each point's row index, so a click can jump to that image's whole z
        fig.add_trace(go.Scattergl(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name,
                                   customdata=sel,
                                   marker=dict(size=3, color=PALETTE[int(c) % len(PALETTE)], opacity=0.6),
                                   hovertemplate=f"{name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    if marker is not None:
        fig.add_trace(marker_trace(*marker))
    # legend in a column on the right (the modebar owns the top edge); the extra width keeps
    # the plot area about as large as the decoded image beside it
    fig.update_layout(width=size + 90, height=size, margin=dict(l=45, r=5, t=30, b=40),
                      legend=dict(itemsizing="constant", font=dict(size=11), x=1.02, y=1),
                      dragmode="select", clickmode="event+select",  # a click selects the point under it
                      xaxis_title=axis_titles[0], yaxis_title=axis_titles[1])
    # equal units on both axes: distances in the picture are distances in latent space
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def grid_figure(mosaic: np.ndarray, axis_x: np.ndarray, axis_y: np.ndarray, titles=("z[0]", "z[1]"),
                size: int = 640) -> go.Figure:
    """A decoded grid as an image with the z value of each column and row on the axes."""
    rows, cols = len(axis_y), len(axis_x)
    h, w = mosaic.shape[0] // rows, mosaic.shape[1] // cols
    fig = go.Figure(go.Image(z=np.repeat(mosaic[..., None], 3, axis=2), hoverinfo="skip"))
    step = max(1, cols // 10)  # at most ~10 labels per axis stay readable
    fig.update_xaxes(tickvals=[(i + 0.5) * w for i in range(0, cols, step)],
                     ticktext=[f"{axis_x[i]:.2f}" for i in range(0, cols, step)], title=titles[0])
    ys = axis_y[::-1]  # top row shows the largest y
    fig.update_yaxes(tickvals=[(i + 0.5) * h for i in range(0, rows, step)],
                     ticktext=[f"{ys[i]:.2f}" for i in range(0, rows, step)], title=titles[1])
    fig.update_layout(width=size, height=size, margin=dict(l=60, r=10, t=10, b=50))
    return fig


def explained_variance_figure(ratio: np.ndarray, size: int = 420) -> go.Figure:
    k = np.arange(1, len(ratio) + 1)
    fig = go.Figure([go.Bar(x=k, y=ratio, name="per component"),
                     go.Scatter(x=k, y=np.cumsum(ratio), name="cumulative", mode="lines+markers")])
    fig.update_layout(width=size, height=300, margin=dict(l=40, r=10, t=10, b=40),
                      xaxis_title="principal component", yaxis_title="explained variance ratio",
                      yaxis_range=[0, 1.02], legend=dict(orientation="h", y=1.1))
    return fig
