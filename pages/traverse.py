"""Traverse: the figure of the β-VAE papers, one row per latent dimension.

Rows are the latent dimensions ordered by the KL the model spends on them over the
test set (the cached latents); columns shift that one coordinate of z0 from -a to +a,
every other coordinate held at z0: a test image's posterior mean, the session's z
(shared with Explore and PCA) or the prior mean 0. For data with ground-truth factors
(sprites), the normalised mutual information between each dimension and each factor
sits beside it. The grid is decoded once per (checkpoint hash, z0, range, columns) and
the figure, the heat map and each row's GIF are cached by what sets them, so a rerun
from any widget costs lookups.
"""
import base64

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ui_common import (_test_factors, current_checkpoint, encoded_image, factor_names, get_cached_logvar, get_z,
                       latents_or_build, show_image, test_images_for, z_text)
from vae_core.images import png_bytes
from vae_core.traversal import (COLLAPSED_KL, FONT_SIZE, PAD, kl_order, row_gif, std_order, traversal_figure,
                                traversal_grid, traversal_values, value_label)


@st.cache_data(show_spinner=False, max_entries=16)
def dim_order(ckpt_hash: str, _mu: np.ndarray, _logvar: np.ndarray | None):
    """(dims, values, what the values are): by KL for a VAE, by spread for an autoencoder."""
    if _logvar is None:
        dims, sd = std_order(_mu)
        return dims, sd, "sd"
    dims, kl = kl_order(_mu, _logvar)
    return dims, kl, "KL"


@st.cache_data(show_spinner="Decoding the traversal…", max_entries=32)
def traversal(ckpt_hash: str, _model, z0: tuple, dims: tuple, extent: float, cols: int) -> np.ndarray:
    """The whole grid, every dimension's row; _model is not hashed: ckpt_hash names its weights."""
    return traversal_grid(_model, np.asarray(z0, np.float32), list(dims), traversal_values(extent, cols))


@st.cache_data(show_spinner=False, max_entries=32)
def figure_png(ckpt_hash: str, z0: tuple, extent: float, cols: int, rows: tuple, labels: tuple, muted: tuple,
               scale: int, _grid: np.ndarray) -> tuple[bytes, tuple[int, int]]:
    """(PNG bytes, (width, height)) of the figure; _grid's rows are picked by `rows`."""
    values = traversal_values(extent, cols)
    fig = traversal_figure(_grid[list(rows)], list(labels), [value_label(v) for v in values], scale=scale,
                           muted_rows=muted, centre=cols // 2 if cols % 2 else None, corner="shift:")
    return png_bytes(fig), (fig.shape[1], fig.shape[0])


@st.cache_data(show_spinner="Making the GIF…", max_entries=32)
def gif_of_row(ckpt_hash: str, z0: tuple, extent: float, cols: int, dim: int, _frames: np.ndarray) -> bytes:
    return row_gif(_frames, size=gif_size(_frames.shape[1]), fps=8)


def gif_size(side: int) -> int:
    """About 256 px, a whole multiple of the image's side: nearest upscaling keeps every pixel square."""
    return side * max(1, 256 // side)


@st.cache_data(show_spinner="Measuring I(z_d; factor) on the test set…", max_entries=8)
def mi_matrix(ckpt_hash: str, _mu: np.ndarray, _factors: np.ndarray) -> np.ndarray:
    """(D, K) I(z_d; v_k) / H(v_k) of the test set's posterior means (vae_core.disentanglement)."""
    from vae_core.disentanglement import mutual_information_matrix
    return mutual_information_matrix(_mu, _factors)


def mi_heatmap(mi: np.ndarray, rows: list[int], names: tuple, pitch: int, top: int) -> go.Figure:
    """The heat map, its rows `pitch` px apart with the plot area `top` px below the chart's
    top: beside the figure, each row lines up with the figure's row of the same dimension."""
    fig = go.Figure(go.Heatmap(
        z=mi[rows], x=list(names), y=[f"z[{d}]" for d in rows], zmin=0.0, zmax=1.0, colorscale="Viridis",
        texttemplate="%{z:.2f}", colorbar=dict(thickness=10, len=min(1.0, 300 / (pitch * len(rows))),
                                              tickvals=[0, 0.5, 1]),
        hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>", xgap=1, ygap=1))
    fig.update_yaxes(autorange="reversed", type="category", ticks="")  # the figure's order, top to bottom
    fig.update_xaxes(type="category", tickangle=-30, ticks="")
    bottom = 64  # the factor names, turned a little so "orientation" fits its cell
    fig.update_layout(title=dict(text="I(z<sub>d</sub>; factor) / H(factor)", x=0.0, xanchor="left", y=1.0,
                                 yref="container", yanchor="top", font=dict(size=13)),
                      height=top + pitch * len(rows) + bottom, margin=dict(l=44, r=8, t=top, b=bottom))
    return fig


ckpt = current_checkpoint()
model = ckpt.model
d = model.latent_dim
_, size, _ = model.image_shape  # (C, H, W): square images
st.title("Traverse")
st.caption("Each row moves one latent dimension of z₀ from −a to +a and keeps every other coordinate at z₀ "
           "(Higgins et al. 2017, β-VAE); rows are ordered by the KL the model spends on the dimension over "
           "the test set, most informative first. The red column is z₀ itself.")

test_images = test_images_for(ckpt)
got = latents_or_build(ckpt, "test")
mu = got[0] if got is not None else None

CENTRES = {"image": "a test image", "current": "the current z", "prior": "the prior mean (0)"}
options = (["image"] if test_images is not None else []) + ["current", "prior"]
c1, c2, c3 = st.columns([1, 1.3, 1.4], gap="large")
centre = c1.radio("Centre z₀ of every row", options, format_func=CENTRES.get, key="trav_centre")
with c2:
    if centre == "image":
        i = st.number_input(f"Index in the {ckpt.dataset} test set", 0, len(test_images) - 1, 0, key="trav_index")
        img = test_images[int(i)]
        z0, recon = encoded_image(ckpt.hash, model, img)
        a, b = st.columns(2)
        show_image(img, 96, "test image", a)
        show_image(recon, 96, "decode(z₀)", b)
    elif centre == "current":
        z0 = get_z()
        text = z_text(z0[:8]).replace(",", ", ") + (", …" if d > 8 else "")
        st.caption(f"z₀ = ({text}): the z of Explore and PCA.")
        st.page_link("pages/explore.py", label="Set z on Explore", icon=":material/explore:")
    else:
        z0 = np.zeros(d, np.float32)
        st.caption("z₀ = 0: the mean of the prior N(0, I).")
with c3:
    extent = st.slider("Range: ±a", 0.5, 6.0, 3.0, 0.5, key="trav_range",
                       help="Each row shifts its dimension from z₀ − a to z₀ + a (prior standard deviations)")
    cols = st.select_slider("Columns", list(range(3, 22, 2)), 9, key="trav_cols",
                            help="Odd, so the centre column is z₀ exactly")

if mu is not None:
    dims, amounts, what = dim_order(ckpt.hash, mu, get_cached_logvar(ckpt.hash, "test"))
    dims = [int(k) for k in dims]
else:  # no latent cache and no dataset: the model's own order, no KL
    dims, amounts, what = list(range(d)), None, None
collapsed = [r for r in range(d) if what == "KL" and amounts[r] < COLLAPSED_KL]
show_collapsed = False
if collapsed:
    show_collapsed = c3.toggle(f"Show collapsed dims ({len(collapsed)})", key="trav_collapsed",
                               help=f"Dimensions whose mean KL is under {COLLAPSED_KL} nats: their posterior is the "
                                    f"prior, so the decoder ignores them and every column looks alike")
    if len(collapsed) == d:
        show_collapsed = True  # a wholly collapsed model: its rows are all there is
rows = [r for r in range(d) if show_collapsed or r not in collapsed]  # positions in `dims`


def row_label(r: int) -> str:
    if what is None:
        return f"z[{dims[r]}]"
    if r in collapsed:
        return f"z[{dims[r]}] · collapsed (KL {amounts[r]:.2f})"
    return f"z[{dims[r]}] · {what} {amounts[r]:.2f}"


z0_key = tuple(float(v) for v in np.asarray(z0, np.float32))
grid = traversal(ckpt.hash, model, z0_key, tuple(dims), float(extent), int(cols))
scale = max(1, round(64 / size))  # 28 px -> 56, 64 px -> 64: readable, crisp
labels = tuple(row_label(r) for r in rows)
muted = tuple(k for k, r in enumerate(rows) if r in collapsed)
png, (w, h) = figure_png(ckpt.hash, z0_key, float(extent), int(cols), tuple(rows), labels, muted, scale, grid)

names = factor_names(ckpt)
factors = _test_factors(ckpt.dataset)[0] if names is not None else None
beside = names is not None and mu is not None and factors is not None and len(factors) == len(mu)
HEAT_W = 360  # px: five factors of ~50 px, the dimension names and a slim colour bar
# a row that wraps: the heat map sits beside the figure where the page is wide enough, else under it;
# the figure keeps its own width (shrunk only when the page is narrower than it)
with st.container(horizontal=True, gap="large"):
    with st.container(width=w):
        data = base64.b64encode(png).decode()
        st.markdown(f'<img alt="traversal figure" src="data:image/png;base64,{data}" style="width:{w}px;'
                    f'max-width:100%;height:auto;display:block;border-radius:4px"/>', unsafe_allow_html=True)
        hidden = "" if show_collapsed or not collapsed else (
            f" {len(collapsed)} collapsed dimension{'s' if len(collapsed) > 1 else ''} (KL < {COLLAPSED_KL} nats) "
            f"hidden: " + ", ".join(f"z[{dims[r]}]" for r in collapsed[:12])
            + (", …" if len(collapsed) > 12 else "."))
        order = {"KL": "mean KL over the test set (nats)", "sd": "spread of the codes over the test set (an "
                 "autoencoder has no KL)", None: "index (no latent cache for this model, and its test set is not here)"}
        st.caption(f"{len(rows)} rows × {cols} columns: z₀ + shift along each row's dimension, rows by "
                   f"{order[what]}.{hidden}")
    if beside:
        with st.container(width=HEAT_W):
            # the figure's first row of tiles starts PAD + FONT_SIZE + PAD + 2 px down (vae_core.traversal)
            st.plotly_chart(mi_heatmap(mi_matrix(ckpt.hash, mu, factors), [dims[r] for r in rows], names,
                                       pitch=size * scale + 2, top=PAD + FONT_SIZE + PAD + 1),
                            key="trav_mi", width="stretch")
            st.caption("Normalised mutual information between each dimension's posterior mean (20 bins) and "
                       "each ground-truth factor of the test set: a disentangled dimension is bright in one "
                       "column only.")
if names is None:
    st.caption("The dimension × factor heat map needs ground-truth factors: it appears for models of the sprites "
               "datasets.")
elif not beside:
    st.caption("The dimension × factor heat map needs this model's test-set latents and the test set's factors, "
               "one per image: they are not both here.")

st.subheader("Downloads")
with st.container(horizontal=True, gap="medium", vertical_alignment="bottom"):
    st.download_button(f"PNG of the figure ({w}×{h})", png, file_name=f"traversal-{st.session_state['model_key']}"
                       f"-{centre}-{cols}.png".replace("/", "-"), mime="image/png", on_click="ignore",
                       key="trav_png", icon=":material/download:")
    r = st.selectbox("GIF of row", rows, format_func=row_label, key="trav_gif_row", width=260)
    gif = gif_of_row(ckpt.hash, z0_key, float(extent), int(cols), dims[r], grid[r])
    st.download_button(f"GIF of z[{dims[r]}] ({2 * cols - 2} frames, there and back)", gif,
                       file_name=f"traversal-z{dims[r]}.gif", mime="image/gif", on_click="ignore", key="trav_gif",
                       icon=":material/animation:")
st.image(gif, caption=f"z[{dims[r]}]: −{extent:g} … +{extent:g} and back", width=gif_size(size) // 2,
         output_format="GIF")
