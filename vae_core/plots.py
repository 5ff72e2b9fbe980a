"""Plotly figures over latents (no streamlit here: pages pass these to st.plotly_chart)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# Ten colours that stay apart for colour-blind readers (Okabe-Ito + two)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
           "#56B4E9", "#F0E442", "#000000", "#999999", "#882255"]


def latent_scatter(points: np.ndarray, labels: np.ndarray, class_names: list[str],
                   marker=None, size: int = 420, axis_titles=("z[0]", "z[1]")) -> go.Figure:
    """WebGL scatter of 2-D points coloured by label, with an optional marker for the current z."""
    fig = go.Figure()
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if c < len(class_names) else str(c)
        fig.add_trace(go.Scattergl(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name,
                                   marker=dict(size=3, color=PALETTE[int(c) % len(PALETTE)], opacity=0.6),
                                   hovertemplate=f"{name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    if marker is not None:
        fig.add_trace(go.Scatter(x=[marker[0]], y=[marker[1]], mode="markers", name="current z",
                                 marker=dict(size=16, symbol="x", color="red", line=dict(width=2, color="white")),
                                 hoverinfo="skip"))
    fig.update_layout(width=size, height=size, margin=dict(l=40, r=10, t=10, b=40),
                      legend=dict(itemsizing="constant", font=dict(size=11)), dragmode="select",
                      xaxis_title=axis_titles[0], yaxis_title=axis_titles[1])
    return fig
