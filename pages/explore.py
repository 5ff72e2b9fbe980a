"""Explore: the scatter of cached latents beside the decoded image for the current z.

Speed: the browser decodes each slider step itself (ui/client_decoder.js, with the
decoder's weights fetched once per model), so the picture follows the key press at
once; the server's fragment, which follows, confirms it. Underneath, the image, the
sliders and a one-point marker overlay live in one fragment, so a slider step reruns
only that; the 10k-point WebGL scatter under
the overlay is drawn on full reruns only. Designs measured and dropped
(benchmarks/ui_latency.py): a full rerun after each step (lost key presses), the
scatter inside the fragment (its redraw delayed every image by ~250 ms in
software-rendered Chromium), and a scatter fragment on a clock (each tick cost
the browser a redraw even when nothing changed).
"""
import numpy as np
import streamlit as st

from ui_common import (DISPLAY, Z_RANGE, browser_decodes, current_checkpoint, get_test_images, get_z, latents_or_build,
                       send_decoder_to_browser, session_scatter, set_z, show_error, show_image, show_pixels, sync_sliders,
                       train_cache_available)
from vae_core import VaeError
from vae_core.favourites import export_favourites, import_favourites
from vae_core.images import decode, png_bytes, reconstruct
from vae_core.latents import nearest_indices
from vae_core.plots import marker_overlay, z_from_selection
from vae_core.preprocess import IMAGE_TYPES, prepare_upload

ckpt = current_checkpoint()
model = ckpt.model
d = model.latent_dim
key = st.session_state["model_key"]
st.title("Explore")

# Which dimensions get sliders: all for d <= 8, else the user's pick (default: the 8
# dimensions with the most KL, i.e. the ones the model actually uses).
if d <= 8:
    slider_dims = list(range(d))
else:
    kl = np.asarray(ckpt.config.get("metrics", {}).get("test_kl_per_dim") or np.zeros(d))
    default = sorted(np.argsort(-kl)[:8].tolist())
    slider_dims = st.multiselect(f"Dimensions with sliders (of {d}; the others keep their values)",
                                 list(range(d)), default=default, format_func=lambda i: f"z[{i}]",
                                 max_selections=16, key=f"slider_dims_{key}")

# Scatter data and axes (outside the fragment: changing them is a full rerun)
got = latents_or_build(ckpt, "test")
scatter = None
if got is not None:
    mu, labels = got
    if train_cache_available(ckpt) and st.toggle("Include the training set", key="with_train",
                                                     help="plots the training images' latents too (60,000 for MNIST)"):
        train_got = latents_or_build(ckpt, "train")
        if train_got is not None:
            mu, labels = np.concatenate([mu, train_got[0]]), np.concatenate([labels, train_got[1]])
    if d <= 2:
        dx, dy = 0, (1 if d == 2 else None)
    else:
        var_order = np.argsort(-mu.var(0))
        c1, c2, _ = st.columns([1, 1, 2])
        dx = c1.selectbox("Scatter x axis", range(d), index=int(var_order[0]), format_func=lambda i: f"z[{i}]")
        dy = c2.selectbox("Scatter y axis", range(d), index=int(var_order[1]), format_func=lambda i: f"z[{i}]")
    scatter = (mu, labels, dx, dy, st.session_state.get("with_train", False))


def _slider_moved():
    z = get_z()
    for i in slider_dims:
        z[i] = st.session_state[f"z_slider_{i}"]
    set_z(z)


def _selection_handler(chart_key: str, mu, dx, dy):
    """on_select callback: a click or box on the scatter sets z (the page then reruns)."""
    def on_select():
        sel = (st.session_state.get(chart_key) or {}).get("selection")
        if sel and (sel.get("points") or sel.get("box")):
            set_z(z_from_selection(sel, get_z(), mu, dx, dy))
    return on_select


@st.fragment
def image_view(marker_slot):
    """The fast path: a slider step reruns only this: one decode, one small PNG, and
    the one-point marker overlay written into marker_slot over the scatter."""
    sync_sliders(slider_dims)
    z = get_z()
    img = decode(model, z)
    show_pixels(img, DISPLAY, caption="decode(z)",
                attrs={"data-model": ckpt.hash, "data-z": ",".join(f"{v:.3f}" for v in st.session_state["z"])}
                if decode_in_browser else None)
    for i in slider_dims:
        st.slider(f"z[{i}]", -Z_RANGE, Z_RANGE, step=0.05, key=f"z_slider_{i}", on_change=_slider_moved)
    c1, c2 = st.columns([1, 2])
    # a callable: the 280x280 PNG is made when clicked, not on every slider step
    c1.download_button("Download PNG", lambda z=z.copy(): png_bytes(decode(model, z), scale=10),
                       file_name="decoded.png", mime="image/png", key="download_png", help="280×280, crisp pixels")
    c2.code("z = [" + ", ".join(f"{v:.2f}" for v in z[:16]) + (", …]" if d > 16 else "]"), language=None)
    if marker_slot is not None:
        _, dx, dy, ranges = marker_slot
        with marker_slot[0]:
            st.plotly_chart(marker_overlay(z[dx], z[dy] if dy is not None else 0.0, ranges, DISPLAY),
                            key="marker_overlay_chart", config={"displayModeBar": False, "staticPlot": True},
                            width="content")


# The marker lives in its own container pulled up over the scatter (same size, same axis
# ranges, transparent, deaf to the mouse): moving it never redraws the 10k points. The
# style sits here, not between the two charts, where its block would add a second gap.
st.markdown(f"<style>.st-key-marker_overlay {{margin-top: calc(-{DISPLAY}px - 1rem); z-index: 5;}}"
            f" .st-key-marker_overlay, .st-key-marker_overlay * {{pointer-events: none !important;}}</style>",
            unsafe_allow_html=True)
# The browser decodes slider steps itself (ui/client_decoder.js) and the fragment's
# image, which follows, confirms it: a step costs no round trip before it shows.
decode_in_browser = browser_decodes(ckpt)
left, right = st.columns([1, 1], gap="large")
marker_slot = None
with left:
    if scatter is not None:
        mu, labels, dx, dy, with_train = scatter
        fig, ranges = session_scatter(ckpt, with_train, dx, dy, mu, labels)
        chart_key = f"scatter_{key}_{dx}_{dy}_{with_train}"
        st.plotly_chart(fig, key=chart_key, on_select=_selection_handler(chart_key, mu, dx, dy),
                        selection_mode=("points", "box"), width="content", config={"displayModeBar": False})
        marker_slot = (st.container(key="marker_overlay"), dx, dy, ranges)
        st.caption(f"{len(mu):,} {ckpt.dataset} latents (posterior means). Click a point to jump to its z; "
                   f"drag a box to jump to the box's centre.")
with right:
    image_view(marker_slot)

st.divider()
b1, b2, _ = st.columns(3)
if b1.button("Sample z from the prior", icon=":material/casino:", width="stretch"):
    set_z(np.random.default_rng().standard_normal(d))
    st.rerun()
if b2.button("Reset z to 0", icon=":material/restart_alt:", width="stretch"):
    set_z(np.zeros(d))
    st.rerun()

tab_upload, tab_near, tab_fav = st.tabs(["Jump to an image", "Nearest dataset images", "Favourites"])

with tab_upload:
    up = st.file_uploader("Upload an image (a digit or garment, any size; dark-on-light photos are inverted)",
                          type=IMAGE_TYPES, key="explore_upload")
    invert = st.radio("Invert", ["auto", "yes", "no"], horizontal=True, key="explore_invert")
    if up is not None:
        try:
            prep = prepare_upload(up.getvalue(), up.name, invert=invert)
        except VaeError as e:
            show_error(e)
        else:
            mu_up, recon = reconstruct(model, prep.image[None])
            c1, c2, c3 = st.columns([1, 1, 2])
            show_image(prep.image, 140, "preprocessed (28×28)", c1)
            show_image(recon[0], 140, "reconstruction", c2)
            for note in prep.notes:
                c3.caption(note)
            if c3.button("Jump to this image's z", key="jump_upload"):
                set_z(mu_up[0])
                st.rerun()

with tab_near:
    images = get_test_images(ckpt.dataset)
    got = latents_or_build(ckpt, "test")
    if images is None or got is None:
        st.info(f"The {ckpt.dataset} test images are not available here (set VAE_DATA_ROOT to a folder "
                f"holding them), so nearest images cannot be shown.")
    else:
        idx = nearest_indices(got[0], get_z(), k=8)
        cols = st.columns(8)
        for c, i in zip(cols, idx):
            show_image(images[i], 84, f"#{i} {ckpt.class_names[got[1][i]]}", c)

with tab_fav:
    favs = st.session_state.setdefault("favourites", {}).setdefault(key, {})
    c1, c2 = st.columns([3, 1])
    name = c1.text_input("Name", placeholder="e.g. slanted seven", key="fav_name")
    if c2.button("Save current z", width="stretch"):
        favs[name.strip() or f"z{len(favs) + 1}"] = [float(v) for v in get_z()]
    for fname, fz in list(favs.items()):
        c1, c2, c3 = st.columns([3, 1, 1])
        c1.write(f"**{fname}** — [" + ", ".join(f"{v:.2f}" for v in fz[:8]) + (", …]" if d > 8 else "]"))
        if c2.button("Go", key=f"fav_go_{fname}"):
            set_z(fz)
            st.rerun()
        if c3.button("Delete", key=f"fav_del_{fname}"):
            del favs[fname]
            st.rerun()
    st.download_button("Export favourites (JSON)", export_favourites(favs, key, d),
                       file_name=f"favourites-{key.replace('/', '_')}.json", mime="application/json",
                       disabled=not favs)
    imp = st.file_uploader("Import favourites (JSON)", type=["json"], key="fav_import")
    if imp is not None:
        try:
            favs.update(import_favourites(imp.getvalue(), d))
            st.success(f"Imported favourites from {imp.name}.")
        except VaeError as e:
            show_error(e)

send_decoder_to_browser(ckpt)  # last: the browser fetches the weights once it has drawn the page
