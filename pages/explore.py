"""Explore: the scatter of cached latents beside the decoded image for the current z."""
import numpy as np
import streamlit as st

from ui_common import Z_RANGE, current_checkpoint, get_z, latents_or_build, set_z
from vae_core.images import decode, png_bytes
from vae_core.plots import latent_scatter

DISPLAY = 420  # px: the chart and the decoded image share this size

ckpt = current_checkpoint()
d = ckpt.model.latent_dim
st.title("Explore")

left, right = st.columns([1, 1], gap="large")

with right:
    z = get_z()
    img = decode(ckpt.model, z)
    st.image(png_bytes(img, scale=DISPLAY // 28), width=DISPLAY, caption="decode(z)")
    for i in range(min(d, 8)):
        st.slider(f"z[{i}]", -Z_RANGE, Z_RANGE, step=0.05, key=f"z_slider_{i}",
                  on_change=lambda: set_z([st.session_state.get(f"z_slider_{j}", 0.0) for j in range(d)]))

with left:
    got = latents_or_build(ckpt)
    if got is not None:
        mu, labels = got
        fig = latent_scatter(mu[:, :2], labels, ckpt.class_names, marker=z[:2], size=DISPLAY)
        st.plotly_chart(fig, width="content", key="scatter")
