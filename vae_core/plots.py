"""Plotly figures (no streamlit here: pages pass these to st.plotly_chart); the latent scatter
itself is drawn by the browser (ui/latent_explorer.js)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# Ten colours that stay apart for colour-blind readers (Okabe-Ito + two)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
           "#56B4E9", "#F0E442", "#000000", "#999999", "#882255"]


def square_ranges(points: np.ndarray, pad: float = 0.05):
    """Equal-length x and y ranges around the points: equal units on both axes
    (the explorer's scatter, ui/latent_explorer.js, draws on a square plot area)."""
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo).max()) / 2 * (1 + pad), 1e-3)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def grid_figure(mosaic: np.ndarray, axis_x: np.ndarray, axis_y: np.ndarray, titles=("z[0]", "z[1]"),
                size: int = 640) -> go.Figure:
    """A decoded grid as an image with the z value of each column and row on the axes.

    The mosaic travels as a PNG data URI (go.Image's source), not as a z array: an
    RGB z array of a 30 x 30 grid is 2.1 million numbers that plotly.py validates and
    serialises (2.8 MB of JSON) and plotly.js paints pixel by pixel into a canvas;
    the grey PNG is tens of kB. plotly.js reads the image's size from the data URI
    itself, and draws it with image-rendering: pixelated (zsmooth off), so cells stay crisp.
    """
    import base64
    from vae_core.images import png_bytes
    rows, cols = len(axis_y), len(axis_x)
    h, w = mosaic.shape[0] // rows, mosaic.shape[1] // cols
    source = "data:image/png;base64," + base64.b64encode(png_bytes(mosaic)).decode()
    fig = go.Figure(go.Image(source=source, hoverinfo="skip"))
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


# ---------------------------------------------------------------- Compare page

LINE_LEGEND = dict(orientation="h", x=0, y=1.02, yanchor="bottom")


def _lines(rows, label, x, y, hover=None, symbol=None) -> go.Figure:
    """One line per label(row) (rows where label gives None are left out), points
    sorted by x, colours in PALETTE order of the sorted labels. hover(row) is shown beside
    (x, y) when the pointer is on a point (not drawn); symbol(row) picks its marker shape."""
    groups: dict[str, list] = {}
    for r in rows:
        if (name := label(r)) is not None:
            groups.setdefault(name, []).append(r)
    fig = go.Figure()
    for i, (name, rs) in enumerate(sorted(groups.items())):
        rs = sorted(rs, key=x)
        marker = dict(size=9, symbol=[symbol(r) for r in rs]) if symbol else None
        fig.add_trace(go.Scatter(x=[x(r) for r in rs], y=[y(r) for r in rs], name=name, mode="lines+markers",
                                 text=[hover(r) for r in rs] if hover else None, marker=marker,
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
    return fig


def training_curves_figure(curves: dict[str, list[dict]], key: str = "test_loss") -> go.Figure:
    """One line per model: `key` (a metrics.jsonl field) against epoch."""
    rows = [{"model": name, **e} for name, epochs in curves.items() for e in epochs if e.get(key) is not None]
    fig = _lines(rows, lambda r: r["model"], lambda r: r["epoch"], lambda r: r[key])
    fig.update_layout(height=340, margin=dict(l=50, r=10, t=40, b=40), xaxis_title="epoch",
                      yaxis_title=key.replace("_", " ") + " (nats)", legend=LINE_LEGEND)
    return fig


def _cell_name(r: dict, with_dim: bool) -> str:
    return (f"{r['model']} z={r['latent_dim']}" if with_dim else f"{r['model']} β={r['beta']:g}") \
        + (f" fb={r['free_bits']:g}" if r.get("free_bits") else "") \
        + (f" wu={r['warmup_epochs']:g}" if not with_dim and r.get("warmup_epochs") else "")


def _beta_name(r: dict) -> str:
    return f"β={r['beta']:g}" + (f" wu={r['warmup_epochs']:g}" if r.get("warmup_epochs") else "")


# plotly marker shapes and the characters that draw them in the axis title's key
BETA_MARKERS = [("circle", "●"), ("square", "■"), ("diamond", "◆"), ("triangle-up", "▲"), ("x", "✕"),
                ("star", "★"), ("triangle-down", "▼"), ("cross", "✚"), ("pentagon", "⬟"), ("hexagon", "⬢")]


def sweep_rate_distortion_figure(rows: list[dict]) -> go.Figure:
    """Reconstruction against KL for the VAE cells, one colour per (model, latent dim), one
    marker shape per beta.

    Beta used to be written beside every point, and the labels collided: the z = 2 cells of
    the conv and linear models lie within a few nats of each other on both axes, and each
    line's end points sit on the plot's edges, where plotly cut the text off. A shape per
    beta cannot collide or be clipped at any density; the x-axis title holds the key and
    hovering a point names its cell and beta.
    """
    vae = [r for r in rows if r.get("kl") is not None]
    betas = sorted({r["beta"] for r in vae})
    shape = {b: BETA_MARKERS[i % len(BETA_MARKERS)] for i, b in enumerate(betas)}
    fig = _lines(vae, lambda r: _cell_name(r, True), lambda r: r["kl"], lambda r: r["recon"],
                 hover=_beta_name, symbol=lambda r: shape[r["beta"]][0])
    key = " · ".join(f"{shape[b][1]} β={b:g}" for b in betas)
    fig.update_layout(height=380, margin=dict(l=50, r=10, t=40, b=40),
                      xaxis_title=f"KL (rate, nats) — {key}" if key else "KL (rate, nats)",
                      yaxis_title="reconstruction (distortion, nats)", legend=LINE_LEGEND)
    return fig


def sweep_nll_figure(rows: list[dict]) -> go.Figure:
    """NLL (VAEs) against latent dim, one line per (model, beta, free bits, warm-up)."""
    fig = _lines(rows, lambda r: _cell_name(r, False) if r.get("nll") is not None else None,
                 lambda r: r["latent_dim"], lambda r: r["nll"])
    fig.update_layout(height=380, margin=dict(l=50, r=10, t=40, b=40), xaxis_title="latent dim",
                      yaxis_title="NLL (nats, IWAE)", xaxis_type="log", legend=LINE_LEGEND)
    return fig


# ---------------------------------------------------------------- Learn page (vae_core.toy)

TOY_MARGIN = dict(l=50, r=10, t=40, b=40)


def toy_data_figure(x: np.ndarray, generated: np.ndarray) -> go.Figure:
    """The data's histogram against x ~ p(x|z), z ~ N(0, 1), as densities on one set of bins."""
    lo, hi = float(min(x.min(), generated.min())), float(max(x.max(), generated.max()))
    bins = dict(start=lo, end=hi, size=(hi - lo) / 60)
    fig = go.Figure([go.Histogram(x=x, xbins=bins, histnorm="probability density", name="data", opacity=0.6,
                                  marker_color=PALETTE[0]),
                     go.Histogram(x=generated, xbins=bins, histnorm="probability density", opacity=0.6,
                                  name="decoded prior samples", marker_color=PALETTE[1])])
    fig.update_layout(barmode="overlay", height=320, margin=TOY_MARGIN, xaxis_title="x", yaxis_title="density",
                      legend=LINE_LEGEND)
    return fig


def toy_posterior_figure(xs, mus, sigmas) -> go.Figure:
    """q(z|x) for a few x against the prior N(0, 1)."""
    z = np.linspace(-4, 4, 400)
    normal = lambda m, s: np.exp(-0.5 * ((z - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    fig = go.Figure(go.Scatter(x=z, y=normal(0.0, 1.0), name="prior N(0, 1)",
                               line=dict(color="#999999", dash="dash")))
    for i, (x, m, s) in enumerate(zip(xs, mus, sigmas)):
        fig.add_trace(go.Scatter(x=z, y=normal(float(m), float(s)), name=f"q(z | x = {x:+.1f})",
                                 line=dict(color=PALETTE[(i + 2) % len(PALETTE)])))
    fig.update_layout(height=320, margin=TOY_MARGIN, xaxis_title="z", yaxis_title="density", legend=LINE_LEGEND)
    return fig


def toy_curves_figure(history: dict) -> go.Figure:
    steps = np.arange(1, len(history["elbo"]) + 1)
    fig = go.Figure()
    for i, (key, name) in enumerate([("elbo", "ELBO (β = 1)"), ("recon", "reconstruction −log p(x|z)"),
                                     ("kl", "KL(q(z|x) ‖ p(z))")]):
        fig.add_trace(go.Scatter(x=steps, y=history[key], name=name, line=dict(color=PALETTE[i])))
    fig.update_layout(height=320, margin=TOY_MARGIN, xaxis_title="Adam step", yaxis_title="nats per point",
                      legend=LINE_LEGEND)
    return fig


def toy_reparam_figure(mu: float, sigma: float, eps: np.ndarray) -> go.Figure:
    """z = μ + σ·ε drawn: each ε ~ N(0, 1) (bottom row) joined to its z (top row)."""
    z = mu + sigma * eps
    xs, ys = [], []
    for e, zz in zip(eps, z):
        xs += [float(e), float(zz), None]
        ys += [0, 1, None]
    fig = go.Figure([go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#999999", width=1), hoverinfo="skip",
                                showlegend=False),
                     go.Scatter(x=eps, y=np.zeros(len(eps)), mode="markers", name="ε ~ N(0, 1)",
                                marker=dict(color=PALETTE[0], size=8)),
                     go.Scatter(x=z, y=np.ones(len(z)), mode="markers", name=f"z = {mu:+.2f} + {sigma:.2f}·ε",
                                marker=dict(color=PALETTE[3], size=8))])
    fig.update_layout(height=240, margin=TOY_MARGIN, xaxis_title="value", legend=LINE_LEGEND,
                      yaxis=dict(tickvals=[0, 1], ticktext=["ε", "z"], range=[-0.3, 1.3]))
    return fig


def toy_collapse_figure(betas, kls, mis, current: float) -> go.Figure:
    """KL and I(x;z) against β, the current β marked."""
    fig = go.Figure([go.Scatter(x=betas, y=kls, name="KL", mode="lines+markers", line=dict(color=PALETTE[0])),
                     go.Scatter(x=betas, y=mis, name="I(x; z)", mode="lines+markers", line=dict(color=PALETTE[3]))])
    fig.add_vline(x=current, line=dict(color="#999999", dash="dot"))
    fig.update_layout(height=320, margin=TOY_MARGIN, xaxis_title="β", yaxis_title="nats", legend=LINE_LEGEND)
    return fig
