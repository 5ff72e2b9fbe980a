"""PCA: principal axes of a high-dimensional latent cloud, decoded live."""
import numpy as np
import streamlit as st

from ui_common import DISPLAY, current_checkpoint, get_pca, get_twonn, latents_or_build, set_z, show_image
from vae_core.geometry import pca_to_z, traversal
from vae_core.images import decode, tile
from vae_core.plots import explained_variance_figure, latent_scatter

ckpt = current_checkpoint()
model = ckpt.model
d = model.latent_dim
st.title("PCA")

if d <= 2:
    st.info(f"This model's latent space has {d} dimension{'s' if d > 1 else ''}: there is nothing to project. "
            "Its latents are drawn as they are on the Explore page.")
    st.page_link("pages/explore.py", label="Open Explore", icon=":material/explore:")
    st.stop()

pca = get_pca(ckpt)
got = latents_or_build(ckpt, "test")
if pca is None or got is None:
    st.stop()
mu, labels = got
k = min(d, 8)

m1, m2, m3 = st.columns(3)
m1.metric("Latent dimension", d)
m2.metric("Intrinsic dimension (TWO-NN)", f"{get_twonn(ckpt):.1f}",
          help="Facco et al. 2017: estimated from the ratio of each latent's 2nd- to 1st-nearest-neighbour "
               "distance over the test set's posterior means")
m3.metric(f"Variance in the top {k} components", f"{pca.explained_ratio[:k].sum():.0%}")

left, right = st.columns([1, 1], gap="large")
with left:
    c1, c2 = st.columns(2)
    i = c1.selectbox("x: component", range(d), 0, format_func=lambda c: f"PC{c + 1}", key="pca_x")
    j = c2.selectbox("y: component", range(d), 1, format_func=lambda c: f"PC{c + 1}", key="pca_y")
    coeffs = np.array([st.session_state.get(f"pc_{c}", 0.0) for c in range(k)])
    marker = None
    if i < k and j < k:
        marker = (coeffs[i] * pca.std[i], coeffs[j] * pca.std[j])
    fig = latent_scatter(pca.projected[:, [i, j]], labels, ckpt.class_names, marker=marker, size=DISPLAY,
                         axis_titles=(f"PC{i + 1}", f"PC{j + 1}"))
    st.plotly_chart(fig, key="pca_scatter", width="content")
    st.plotly_chart(explained_variance_figure(pca.explained_ratio, DISPLAY), key="pca_var", width="content")


@st.fragment
def live_decode():
    # the image first, from the sliders' current values, so it stays in view above them
    a = np.array([st.session_state.get(f"pc_{c}", 0.0) for c in range(k)])
    z = pca_to_z(pca, a)
    show_image(decode(model, z), 280, "decode(z)")
    st.caption(rf"$z = \bar z + \sum_i a_i \sigma_i v_i$ over the top {k} principal components $v_i$; "
               r"each slider is $a_i$, in standard deviations $\sigma_i$ of the latents along $v_i$.")
    for c in range(k):
        st.slider(f"PC{c + 1} (σ = {pca.std[c]:.2f}, {pca.explained_ratio[c]:.0%} of variance)",
                  -3.0, 3.0, 0.0, 0.1, key=f"pc_{c}")
    if st.button("Use this z on Explore"):
        set_z(z)
        st.switch_page("pages/explore.py")


with right:
    live_decode()

st.subheader("Traversal")
c = st.selectbox("Component", range(d), 0, format_func=lambda c: f"PC{c + 1}", key="pca_traverse")
steps = 11
zs = traversal(pca, c, base_coeffs=coeffs, n=steps, extent=3.0)
strip = tile(decode(model, zs)[None], pad=2, pad_value=60)
show_image(strip, strip.shape[1] * 3, f"PC{c + 1} from −3σ to +3σ ({steps} steps), the other components "
                                          f"at the sliders' values")
