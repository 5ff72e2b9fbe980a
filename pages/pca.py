"""PCA: principal axes of a high-dimensional latent cloud, decoded live.

The same browser explorer as Explore (ui/latent_explorer.js) over the principal
plane: its sliders move z along the top principal components in σ units, and z is
the one z of the session (and the URL), so Explore opens where PCA left it.
"""
import numpy as np
import streamlit as st

from ui_common import (Plane, current_checkpoint, get_pca, get_twonn, get_z, latent_view, latents_or_build,
                       show_pixels)
from vae_core.images import decode, tile
from vae_core.plots import explained_variance_figure

ckpt = current_checkpoint()
model = ckpt.model
d = model.latent_dim
key = st.session_state["model_key"]
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

c1, c2, _ = st.columns([1, 1, 2])
i = c1.selectbox("Scatter x: component", range(d), 0, format_func=lambda c: f"PC{c + 1}", key="pca_x")
j = c2.selectbox("Scatter y: component", range(d), 1, format_func=lambda c: f"PC{c + 1}", key="pca_y")
plane = Plane(points=pca.projected[:, [i, j]], labels=labels, mu=mu, origin=pca.mean, ax=pca.components[i],
              ay=pca.components[j] if j != i else None, titles=(f"PC{i + 1}", f"PC{j + 1}"), tag=f"pca-{i}-{j}")
sliders = [{"label": f"PC{c + 1}", "u": pca.components[c].tolist(), "scale": max(float(pca.std[c]), 1e-6),
            "lo": -3.0, "hi": 3.0, "step": 0.1,
            "help": f"σ = {pca.std[c]:.2f}, {pca.explained_ratio[c]:.0%} of the variance"} for c in range(k)]
caption = (f"{len(mu):,} test latents projected on PC{i + 1} and PC{j + 1}. Each slider moves z along a principal "
           f"axis v_i in standard deviations σ_i of the latents (a_i = (z − z̄)·v_i / σ_i); click a point to jump "
           f"to its z, or click or drag elsewhere to move z in this plane.")


@st.fragment
def explorer():
    """Reruns for each z the browser sends; the traversal strip follows z."""
    latent_view(f"pca_{key}", ckpt, sliders, plane, caption)
    c = st.selectbox("Traversal along", range(d), 0, format_func=lambda c: f"PC{c + 1}", key="pca_traverse")
    # z itself moved along v_c from -3σ to +3σ: every other coordinate of z stays as it is
    z, v, sd = get_z().astype(np.float64), pca.components[c], max(float(pca.std[c]), 1e-6)
    steps = 11
    a = np.linspace(-3.0, 3.0, steps) - (z - pca.mean) @ v / sd
    strip = tile(decode(model, z + a[:, None] * sd * v)[None], pad=2, pad_value=60)
    # 11 frames at 2x fit the column (3x overflowed it by 44 px)
    show_pixels(strip, strip.shape[1] * 2, f"z moved along PC{c + 1} from −3σ to +3σ ({steps} steps); "
                                           f"everything else at z")


explorer()
if st.button("Open this z on Explore", icon=":material/explore:"):
    st.switch_page("pages/explore.py")  # z is the session's one z; app.py puts it in the URL there
st.plotly_chart(explained_variance_figure(pca.explained_ratio, 460), key="pca_var", width="content")
