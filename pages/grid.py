"""Grid: decode an n x n grid over [-a, a]^2 or over the prior's quantiles."""
import numpy as np
import streamlit as st

from ui_common import current_checkpoint, get_pca, get_z
from vae_core.images import decode_grid, grid_axes, png_bytes
from vae_core.plots import grid_figure

ckpt = current_checkpoint()
d = ckpt.model.latent_dim
st.title("Grid")

c1, c2, c3 = st.columns(3)
n = c1.slider("Grid size n (n × n images)", 5, 30, 15, key="grid_n")
mode = c2.radio("Spacing", ["linear", "quantiles"], horizontal=True, key="grid_mode",
                format_func=lambda m: "even on [-a, a]" if m == "linear" else "prior quantiles Φ⁻¹")
extent = c3.number_input("a", 0.5, 10.0, 3.0, step=0.5, key="grid_extent", disabled=mode != "linear")
if mode == "quantiles":
    st.caption("Quantile spacing (Kingma & Welling 2014, Fig. 4): z = Φ⁻¹(p) on an even grid of p in (0, 1), "
               "so each cell holds the same prior mass.")

base = get_z()
if d == 1:
    st.info("This model has one latent dimension: the grid shows z[0] along x (rows repeat).")
    dirs, titles = (np.eye(1)[0], np.zeros(1)), ("z[0]", "")
elif d == 2:
    dirs, titles = (np.eye(2)[0], np.eye(2)[1]), ("z[0]", "z[1]")
else:
    axes = st.radio("Axes", ["two dimensions", "two principal components"], horizontal=True, key="grid_axes")
    c1, c2 = st.columns(2)
    if axes == "two dimensions":
        i = c1.selectbox("x: dimension", range(d), 0, format_func=lambda k: f"z[{k}]", key="grid_dx")
        j = c2.selectbox("y: dimension", range(d), 1, format_func=lambda k: f"z[{k}]", key="grid_dy")
        dirs, titles = (np.eye(d)[i], np.eye(d)[j]), (f"z[{i}]", f"z[{j}]")
    else:
        pca = get_pca(ckpt)
        if pca is None:
            st.stop()
        i = c1.selectbox("x: component", range(d), 0, format_func=lambda k: f"PC{k + 1}", key="grid_pcx")
        j = c2.selectbox("y: component", range(d), 1, format_func=lambda k: f"PC{k + 1}", key="grid_pcy")
        # one unit along an axis is one standard deviation of the latents along that component
        dirs = (pca.components[i] * pca.std[i], pca.components[j] * pca.std[j])
        titles = (f"PC{i + 1} (σ units)", f"PC{j + 1} (σ units)")
    st.caption("The other dimensions stay at the current z (set it on Explore).")

axis = grid_axes(n, extent, mode)
mosaic = decode_grid(ckpt.model, base, axis, axis if d > 1 else np.zeros(n), dirs)
st.plotly_chart(grid_figure(mosaic, axis, axis, titles), key="grid_fig", width="content")
st.download_button(f"Download PNG ({mosaic.shape[1] * 4}×{mosaic.shape[0] * 4})", png_bytes(mosaic, scale=4),
                   file_name=f"grid-{n}x{n}.png", mime="image/png")
