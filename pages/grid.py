"""Grid: decode an n x n grid over [-a, a]^2 or over the prior's quantiles.

Speed: decoding up to 900 images is the slow part (a few hundred ms on a CPU), so the
mosaic and its figure are cached by everything that sets them (the checkpoint's hash,
the grid's axes, the base z, the two directions and the axis titles); a switch back
to this page, or a rerun from any other widget, sends a cached figure. The figure
carries the mosaic as a small PNG rather than an array of pixels (see
vae_core.plots.grid_figure), and the 4x PNG for download is made only when its
button is clicked.
"""
import numpy as np
import streamlit as st

from ui_common import SAMPLE_HELP, SAMPLE_SOURCES, current_checkpoint, get_pca, get_z, sample_z, show_pixels
from vae_core.images import decode, decode_grid, grid_axes, png_bytes, tile
from vae_core.plots import grid_figure


# cache_resource, not cache_data: the figure is handed out as the same object, not a
# copy; unpickling a plotly figure validates it all again, which costs as much as
# building it. Neither the mosaic nor the figure is changed after it is made.
@st.cache_resource(show_spinner="Decoding the grid…", max_entries=32)
def grid_view(ckpt_hash: str, _model, base: np.ndarray, axis_x: np.ndarray, axis_y: np.ndarray, dirs: tuple,
              titles: tuple):
    """(mosaic, figure) of a grid; _model is not hashed: ckpt_hash names its weights."""
    mosaic = decode_grid(_model, base, axis_x, axis_y, dirs)
    return mosaic, grid_figure(mosaic, axis_x, axis_y, titles)


ckpt = current_checkpoint()
d = ckpt.model.latent_dim
st.title("Grid")

fsq = ckpt.model.quantizer if ckpt.model.discrete == "fsq" else None
if fsq is not None:
    st.caption(f"FSQ: each channel takes {', '.join(map(str, fsq.levels))} levels, so two dimensions make a grid of "
               f"their level pairs, every cell a code of the model. (Principal components cross the grid "
               f"between its points: each cell then shows the nearest grid point's decode.)")
elif ckpt.model.discrete == "vq":
    st.caption("VQ-VAE: the grid spans the encoder's output before quantisation; each cell decodes the codes "
               "nearest to it, so the mosaic is made of patches, one per code combination.")
what = st.radio("Show", ["axes", "samples"], horizontal=True, key="grid_what",
                format_func=lambda w: "a grid over two axes" if w == "axes" else "random samples",
                disabled=ckpt.model.discrete is not None,
                help="random samples: n × n draws of z, from the prior or from a mixture fitted to q(z)")
if what == "samples" and ckpt.model.discrete is None:
    c1, c2, c3 = st.columns(3, vertical_alignment="bottom")
    n = c1.slider("Grid size n (n × n images)", 2, 20, 8, key="grid_samples_n")
    source = c2.selectbox("Sample z from", list(SAMPLE_SOURCES), format_func=SAMPLE_SOURCES.get,
                          key="grid_sample_from", help=SAMPLE_HELP)
    seed = st.session_state.setdefault("grid_seed", 0)
    c3.button("New samples", icon=":material/casino:", key="grid_new_samples",
              on_click=lambda: st.session_state.__setitem__("grid_seed", seed + 1))
    z = sample_z(ckpt, source, n * n, seed=seed)
    if z is None:
        st.stop()
    images = decode(ckpt.model, z)  # (n*n, H, W) or (n*n, H, W, 3)
    mosaic = tile(images.reshape(n, n, *images.shape[1:]), pad=2, pad_value=60)
    show_pixels(mosaic, min(720, mosaic.shape[1] * 3), f"{n * n} draws of z from {SAMPLE_SOURCES[source]} "
                                                       f"(seed {seed}), decoded")
    st.download_button(f"Download PNG ({mosaic.shape[1] * 4}×{mosaic.shape[0] * 4})",
                       lambda: png_bytes(mosaic, scale=4), file_name=f"samples-{source}-{n}x{n}-seed{seed}.png",
                       mime="image/png", on_click="ignore", key="grid_samples_download")
    st.stop()

c1, c2, c3 = st.columns(3)
n = c1.slider("Grid size n (n × n images)", 5, 30, 15, key="grid_n")
mode = c2.radio("Spacing", ["linear", "quantiles"], horizontal=True, key="grid_mode",
                format_func=lambda m: "even on [-a, a]" if m == "linear" else "prior quantiles Φ⁻¹")
extent = c3.number_input("a", 0.5, 10.0, 3.0, step=0.5, key="grid_extent", disabled=mode != "linear")
if mode == "quantiles":
    st.caption("Quantile spacing (Kingma & Welling 2014, Fig. 4): z = Φ⁻¹(p) on an even grid of p in (0, 1), "
               "so each cell holds the same prior mass.")

# grid_latents adds x * dirs[0] + y * dirs[1] to the base, so the base must be 0 along
# both directions for the axes' labels to be the z values that were decoded
base = np.array(get_z(), dtype=np.float64)
if d == 1:
    st.info("This model has one latent dimension: the grid shows z[0] along x (rows repeat).")
    dirs, titles, dims = (np.eye(1)[0], np.zeros(1)), ("z[0]", ""), (0, None)
    base[:] = 0.0
elif d == 2:
    dirs, titles, dims = (np.eye(2)[0], np.eye(2)[1]), ("z[0]", "z[1]"), (0, 1)
    base[:] = 0.0
else:
    axes = st.radio("Axes", ["two dimensions", "two principal components"], horizontal=True, key="grid_axes")
    c1, c2 = st.columns(2)
    if axes == "two dimensions":
        i = c1.selectbox("x: dimension", range(d), 0, format_func=lambda k: f"z[{k}]", key="grid_dx")
        j = c2.selectbox("y: dimension", range(d), 1, format_func=lambda k: f"z[{k}]", key="grid_dy")
        dirs, titles, dims = (np.eye(d)[i], np.eye(d)[j]), (f"z[{i}]", f"z[{j}]"), (i, j)
        base[[i, j]] = 0.0
    else:
        pca = get_pca(ckpt)
        if pca is None:
            st.stop()
        i = c1.selectbox("x: component", range(d), 0, format_func=lambda k: f"PC{k + 1}", key="grid_pcx")
        j = c2.selectbox("y: component", range(d), 1, format_func=lambda k: f"PC{k + 1}", key="grid_pcy")
        # one unit along an axis is one standard deviation of the latents along that component,
        # counted from the cloud's mean: take the current z's own coordinates on both out
        for k in dict.fromkeys((i, j)):
            base -= ((base - pca.mean) @ pca.components[k]) * pca.components[k]
        dirs = (pca.components[i] * pca.std[i], pca.components[j] * pca.std[j])
        titles, dims = (f"PC{i + 1} (σ units)", f"PC{j + 1} (σ units)"), None  # not latent dimensions
    st.caption("The other dimensions stay at the current z (set it on Explore).")

axis_x = grid_axes(n, extent, mode)
axis_y = axis_x if d > 1 else np.zeros(n)
if fsq is not None and dims is not None:  # the level pairs of the two dimensions, n aside
    axis_x = np.array(fsq.values(dims[0]))
    axis_y = np.array(fsq.values(dims[1])) if dims[1] is not None else np.zeros(1)
mosaic, fig = grid_view(ckpt.hash, ckpt.model, base, axis_x, axis_y, dirs, titles)
st.plotly_chart(fig, key="grid_fig", width="content")
# a callable: the 4x PNG is made when the button is clicked, not on every run; "ignore": no rerun
st.download_button(f"Download PNG ({mosaic.shape[1] * 4}×{mosaic.shape[0] * 4})",
                   lambda: png_bytes(mosaic, scale=4), file_name=f"grid-{len(axis_x)}x{len(axis_y)}.png",
                   mime="image/png", on_click="ignore", key="grid_download")
