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
import torch

from ui_common import (code_counts, current_checkpoint, encoded_image, factor_names, factors_of_test_set,
                       get_cached_logvar, get_z, latents_or_build, show_image, test_images_for, z_text)
from vae_core.images import png_bytes
from vae_core.traversal import (COLLAPSED_KL, FONT_SIZE, PAD, decode_table, fsq_traversal_latents, kl_order, row_gif,
                                std_order, traversal_figure, traversal_grid, traversal_values, value_label,
                                vq_traversal_latents)


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


@st.cache_data(show_spinner="Decoding the traversal…", max_entries=32)
def discrete_traversal(ckpt_hash: str, _model, z0: tuple, dims: tuple, codes: tuple) -> np.ndarray:
    """fsq: each row's channel through its levels; vq-vae: each slot through `codes`."""
    q = _model.quantizer
    if _model.discrete == "fsq":
        z = fsq_traversal_latents(z0, list(dims), [q.values(k) for k in range(len(q.levels))])
    else:
        z = vq_traversal_latents(z0, q.codebook.cpu().numpy(), q.M, list(codes))
    return decode_table(_model, z)


@st.cache_data(show_spinner=False, max_entries=32)
def figure_png(ckpt_hash: str, z0: tuple, setting: tuple, col_labels: tuple, centre: int | None, corner: str,
               rows: tuple, labels: tuple, muted: tuple, scale: int,
               _grid: np.ndarray) -> tuple[bytes, tuple[int, int]]:
    """(PNG bytes, (width, height)) of the figure; _grid's rows are picked by `rows`; `setting`
    (range and columns, or the codes) names the grid with the hash and z0."""
    fig = traversal_figure(_grid[list(rows)], list(labels), list(col_labels), scale=scale,
                           muted_rows=muted, centre=centre, corner=corner)
    return png_bytes(fig), (fig.shape[1], fig.shape[0])


@st.cache_data(show_spinner="Making the GIF…", max_entries=32)
def gif_of_row(ckpt_hash: str, z0: tuple, setting: tuple, row: int, _frames: np.ndarray) -> bytes:
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
discrete = model.discrete  # "fsq", "vq" or None
st.title("Traverse")
st.caption({None: "Each row moves one latent dimension of z₀ from −a to +a and keeps every other coordinate at z₀ "
                  "(Higgins et al. 2017, β-VAE); rows are ordered by the KL the model spends on the dimension over "
                  "the test set, most informative first. The red column is z₀ itself.",
            "fsq": "FSQ: each row sets one channel of z₀ to each of its levels in turn and keeps the others; rows "
                   "by the spread of the channel's codes over the test set. Every tile is a code of the model.",
            "vq": "VQ-VAE: each row replaces one slot of z₀'s codes by each of the codes the test set uses most "
                  "and keeps the other slots."}[discrete])

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
    extent, cols = 3.0, 9
    if discrete is None:
        extent = st.slider("Range: ±a", 0.5, 6.0, 3.0, 0.5, key="trav_range",
                           help="Each row shifts its dimension from z₀ − a to z₀ + a (prior standard deviations)")
        cols = st.select_slider("Columns", list(range(3, 22, 2)), 9, key="trav_cols",
                                help="Odd, so the centre column is z₀ exactly")
    elif discrete == "vq":
        cols = st.select_slider("Codes (columns)", list(range(4, 33, 2)), 12, key="trav_codes",
                                help="The codes the test set uses most, most used first")

codes = ()
if discrete == "vq":  # rows are slots; columns the most used codes (the codebook's order without a cache)
    q = model.quantizer
    dims, amounts, what = list(range(q.M)), None, None
    counts = code_counts(ckpt.hash, model, mu) if mu is not None else np.zeros(q.K)
    codes = tuple(int(k) for k in np.argsort(-counts, kind="stable")[:cols])
elif mu is not None:
    dims, amounts, what = dim_order(ckpt.hash, mu, get_cached_logvar(ckpt.hash, "test"))
    dims = [int(k) for k in dims]
else:  # no latent cache and no dataset: the model's own order, no KL
    dims, amounts, what = list(range(d)), None, None
collapsed = [r for r in range(len(dims)) if what == "KL" and amounts[r] < COLLAPSED_KL]
show_collapsed = False
if collapsed:
    show_collapsed = c3.toggle(f"Show collapsed dims ({len(collapsed)})", key="trav_collapsed",
                               help=f"Dimensions whose mean KL is under {COLLAPSED_KL} nats: their posterior is the "
                                    f"prior, so the decoder ignores them and every column looks alike")
    if len(collapsed) == d:
        show_collapsed = True  # a wholly collapsed model: its rows are all there is
rows = [r for r in range(len(dims)) if show_collapsed or r not in collapsed]  # positions in `dims`


z0_key = tuple(float(v) for v in np.asarray(z0, np.float32))
# vq-vae: z0's code in each slot, named in its row's label
z0_slot_codes = model.quantizer.codes(torch.tensor([z0_key]))[0].tolist() if discrete == "vq" else None


def row_label(r: int) -> str:
    if discrete == "vq":
        return f"slot {r} · code {int(z0_slot_codes[r])}"
    if discrete == "fsq":
        return f"z[{dims[r]}] · {model.quantizer.levels[dims[r]]} levels · sd {amounts[r]:.2f}" \
            if what else f"z[{dims[r]}] · {model.quantizer.levels[dims[r]]} levels"
    if what is None:
        return f"z[{dims[r]}]"
    if r in collapsed:
        return f"z[{dims[r]}] · collapsed (KL {amounts[r]:.2f})"
    return f"z[{dims[r]}] · {what} {amounts[r]:.2f}"


if discrete:
    grid = discrete_traversal(ckpt.hash, model, z0_key, tuple(dims), codes)
    setting = codes
    if discrete == "fsq":
        widest = max(model.quantizer.levels)
        col_labels, centre_col, corner = tuple(str(k + 1) for k in range(widest)), None, "level:"
    else:
        col_labels, centre_col, corner = tuple(f"#{k}" for k in codes), None, "code:"
else:
    grid = traversal(ckpt.hash, model, z0_key, tuple(dims), float(extent), int(cols))
    setting = (float(extent), int(cols))
    col_labels = tuple(value_label(v) for v in traversal_values(extent, cols))
    centre_col, corner = (cols // 2 if cols % 2 else None), "shift:"
scale = max(1, round(64 / size))  # 28 px -> 56, 64 px -> 64: readable, crisp
labels = tuple(row_label(r) for r in rows)
muted = tuple(k for k, r in enumerate(rows) if r in collapsed)
png, (w, h) = figure_png(ckpt.hash, z0_key, setting, col_labels, centre_col, corner, tuple(rows), labels, muted,
                         scale, grid)

names = factor_names(ckpt)
factors = factors_of_test_set(ckpt) if names is not None else None
beside = names is not None and mu is not None and factors is not None and len(factors) == len(mu) \
    and discrete != "vq"  # its rows are slots of several numbers, not dimensions
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
        if discrete == "fsq":
            st.caption(f"{len(rows)} rows, one per channel, through its levels (lowest first; blank: a channel "
                       f"with fewer levels); rows by {order[what] if what else order[None]}.")
        elif discrete == "vq":
            st.caption(f"{len(rows)} slots × the {len(codes)} codes the test set uses most (most used first); "
                       f"each row's label names z₀'s own code in that slot.")
        else:
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
if discrete == "vq" and names is not None:
    st.caption("The dimension × factor heat map is for models whose rows are single dimensions, not VQ slots.")
elif names is None:
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
    frames = grid[r]
    if discrete == "fsq":  # its own levels, not the blank tiles after them
        frames = frames[:model.quantizer.levels[dims[r]]]
    gif = gif_of_row(ckpt.hash, z0_key, setting, r, frames)
    name = f"slot {r}" if discrete == "vq" else f"z[{dims[r]}]"
    st.download_button(f"GIF of {name} ({2 * len(frames) - 2} frames, there and back)", gif,
                       file_name=f"traversal-{name.replace(' ', '').replace('[', '').replace(']', '')}.gif",
                       mime="image/gif", on_click="ignore", key="trav_gif", icon=":material/animation:")
span = {None: f"−{extent:g} … +{extent:g} and back", "fsq": "its levels and back", "vq": "the codes and back"}
st.image(gif, caption=f"{name}: {span[discrete]}", width=gif_size(size) // 2, output_format="GIF")
