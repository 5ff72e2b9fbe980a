"""Explore: the scatter of cached latents beside the decoded image for the current z.

The scatter, the image, the sliders and the z readout are one browser component
(ui/latent_explorer.js): the browser moves the sliders, decodes z and draws the marker
itself, and sends z to the server, which reruns only the fragment around it (the URL,
the nearest images). Designs measured and dropped on the way are in the README (Speed).
"""
import numpy as np
import streamlit as st
import torch

from ui_common import (SAMPLE_HELP, SAMPLE_SOURCES, Plane, code_counts, code_usage_chart, codes_of, current_checkpoint, encoded_image,
                       factor_colouring, factor_names, get_z, latent_view, latents_or_build, prepared_upload,
                       public_mode, sample_z, set_z, show_error, show_image, show_pixels, test_images_for,
                       train_cache_available, z_limit)
from vae_core import VaeError
from vae_core.favourites import export_favourites, favourites_file, import_favourites, load_favourites, save_favourites
from vae_core.images import tile
from vae_core.latents import nearest_indices
from vae_core.preprocess import IMAGE_TYPES

ckpt = current_checkpoint()
model = ckpt.model
d = model.latent_dim
discrete = model.discrete  # "fsq", "vq" or None
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

# Scatter data and axes (changing them is a full rerun)
got = latents_or_build(ckpt, "test")
plane, caption = None, "No latent cache for this model and the dataset is not here: no scatter."
if got is not None:
    mu, labels = got
    with_train = False
    if train_cache_available(ckpt) and st.toggle("Include the training set", key="with_train",
                                                     help="plots the training images' latents too (60,000 for MNIST)"):
        train_got = latents_or_build(ckpt, "train")
        if train_got is not None:
            mu, labels, with_train = np.concatenate([mu, train_got[0]]), np.concatenate([labels, train_got[1]]), True
    classes = palette = None
    colour_tag = ""
    if (names := factor_names(ckpt)) and not with_train:
        # sprites carry their generative factors: colour the points by any of them
        by = st.columns([1, 3])[0].selectbox("Colour points by", names, key="colour_by",
                          help="the factor that generated each image; ordered factors in 10 steps (viridis)")
        got_colouring = factor_colouring(ckpt, by)
        if got_colouring is not None and len(got_colouring[0]) == len(labels):
            labels, classes, palette = got_colouring
            colour_tag = f"-{by}"
    if d <= 2:
        dx, dy = 0, (1 if d == 2 else None)
    else:
        var_order = np.argsort(-mu.var(0))
        c1, c2, _ = st.columns([1, 1, 2])
        dx = c1.selectbox("Scatter x axis", range(d), index=int(var_order[0]), format_func=lambda i: f"z[{i}]")
        dy = c2.selectbox("Scatter y axis", range(d), index=int(var_order[1]), format_func=lambda i: f"z[{i}]")
    eye = np.eye(d)
    points = np.stack([mu[:, dx], mu[:, dy] if dy is not None else np.zeros(len(mu))], 1)
    if discrete == "fsq":  # codes sit on a grid: spread each cell's points over it to show how many
        steps = [model.quantizer.step(k) for k in (dx, dy if dy is not None else dx)]
        points = points + np.random.default_rng(0).uniform(-0.3, 0.3, points.shape) * np.array(steps)
    plane = Plane(points=points,
                  labels=labels, mu=mu, origin=np.zeros(d), ax=eye[dx], ay=None if dy is None else eye[dy],
                  titles=(f"z[{dx}]", f"z[{dy}]" if dy is not None else ""),
                  tag=f"explore-{dx}-{dy}-{with_train}{colour_tag}", classes=classes, palette=palette)
    what = {None: "latents (posterior means)", "fsq": "codes, each cell's points spread over it (they share "
            "its grid point)", "vq": "encoder outputs before quantisation (z_e)"}[discrete]
    caption = (f"{len(mu):,} {ckpt.dataset} {what}. Click a point to jump to its z; click or "
               f"drag elsewhere to move z's plotted coordinates there; click a class in the legend to hide it.")

if discrete == "fsq":  # each slider steps through its channel's levels: every position is a grid point
    q = model.quantizer
    sliders = [{"label": f"z[{i}]", "dim": i, "lo": q.values(i)[0], "hi": q.values(i)[-1],
                "step": q.step(i)} for i in slider_dims]
else:
    lim = z_limit()  # ±4, or a VQ-VAE's codebook reach
    sliders = [{"label": f"z[{i}]", "dim": i, "lo": -lim, "hi": lim, "step": 0.05} for i in slider_dims]
test_images = test_images_for(ckpt)


@st.fragment
def explorer():
    """Reruns for each z the browser sends (at most every 80 ms while something moves)."""
    latent_view(f"explore_{key}", ckpt, sliders, plane, caption)
    test = latents_or_build(ckpt, "test") if test_images is not None else None
    if test is not None:  # the nearest test images follow z
        idx = nearest_indices(test[0], get_z(), k=8)
        strip = tile(test_images[idx][None], pad=2, pad_value=60)
        show_pixels(strip, 8 * 64, "the 8 nearest test images to z: " +
                    ", ".join(f"#{i} {ckpt.class_names[test[1][i]]}" for i in idx))
    if discrete:
        codes_panel(test)


def pick_codes() -> None:
    """A slot's code was picked: z becomes the codebook vectors of every slot's code."""
    codes = [int(st.session_state[f"vq_code_{key}_{m}"]) for m in range(model.quantizer.M)]
    with torch.no_grad():
        set_z(model.quantizer.embed(torch.tensor([codes]))[0].numpy())


def codes_panel(test) -> None:
    """fsq: which grid point z is; vq-vae: a code picker per slot. Then the codebook's usage."""
    codes = codes_of(model, get_z())
    if discrete == "fsq":
        q = model.quantizer
        levels = q.level_indices(torch.tensor(get_z()[None]))[0].tolist()
        st.caption(f"FSQ code #{int(codes[0]):,} of {q.codebook_size:,}: level "
                   + ", ".join(f"{lv + 1}/{n}" for lv, n in zip(levels, q.levels))
                   + " (each slider steps through its channel's levels; any z decodes as its nearest grid point).")
    else:
        vq = model.quantizer
        st.markdown(f"**Codes** — {vq.M} slot{'s' if vq.M > 1 else ''} of {vq.e} numbers, each one of "
                    f"{vq.K} codebook vectors. z here is the encoder's output before quantisation; the image is "
                    f"its quantised decode.")
        for m, c in enumerate(codes):  # the pickers follow z wherever it was set
            st.session_state[f"vq_code_{key}_{m}"] = int(c)
        per_row = min(vq.M, 8)
        for start in range(0, vq.M, per_row):
            for m, col in zip(range(start, min(vq.M, start + per_row)), st.columns(per_row)):
                col.number_input(f"slot {m}", 0, vq.K - 1, step=1, key=f"vq_code_{key}_{m}", on_change=pick_codes)
    if test is not None:
        fig, caption = code_usage_chart(code_counts(ckpt.hash, model, test[0]), codes)
        st.plotly_chart(fig, key=f"code_usage_{key}", config={"displayModeBar": False})
        st.caption(caption)


explorer()

st.divider()
# Actions run as on_click callbacks: a callback runs before the script with the click,
# so a click that lands while another run is going (Streamlit interrupts that run) is
# never lost, as an `if st.button(...):` body can be.
def random_code() -> np.ndarray:
    """A discrete model's prior draw: a uniformly random code (the VQ-VAE paper's prior while
    training; FSQ's grid point by point). Continuous models sample through ui_common.sample_z."""
    rng = np.random.default_rng()
    if discrete == "fsq":
        return np.array([rng.choice(model.quantizer.values(i)) for i in range(d)])
    vq = model.quantizer
    with torch.no_grad():
        return vq.embed(torch.as_tensor(rng.integers(0, vq.K, (1, vq.M))))[0].numpy()


def sample_from(source: str) -> None:
    z = sample_z(ckpt, source, 1)
    if z is not None:
        set_z(z[0])


b1, b2, b3 = st.columns(3)
if discrete:
    b1.button("Random code", icon=":material/casino:", width="stretch", on_click=lambda: set_z(random_code()))
else:
    source = b2.selectbox("Sample z from", list(SAMPLE_SOURCES), format_func=lambda s: f"from {SAMPLE_SOURCES[s]}",
                          key="explore_sample_from", help=SAMPLE_HELP, label_visibility="collapsed")
    b1.button("Sample z", icon=":material/casino:", width="stretch", on_click=sample_from, args=(source,),
              help=f"a draw from {SAMPLE_SOURCES[source]} (the box beside it)")
b3.button("Reset z to 0", icon=":material/restart_alt:", width="stretch", on_click=lambda: set_z(np.zeros(d)))

tab_upload, tab_fav = st.tabs(["Jump to an image", "Favourites"])

with tab_upload:
    up = st.file_uploader("Upload an image (a digit or garment, any size; dark-on-light photos are inverted)",
                          type=IMAGE_TYPES, key="explore_upload")
    invert = st.radio("Invert", ["auto", "yes", "no"], horizontal=True, key="explore_invert")
    if up is not None:
        try:
            prep = prepared_upload(up, invert, model.image_shape)  # decoded once per content
        except VaeError as e:
            show_error(e)
        else:
            mu_up, recon = encoded_image(ckpt.hash, model, prep.image)
            c1, c2, c3 = st.columns([1, 1, 2])
            show_image(prep.image, 140, f"preprocessed ({prep.image.shape[1]}×{prep.image.shape[0]})", c1)
            show_image(recon, 140, "reconstruction", c2)
            for note in prep.notes:
                c3.caption(note)
            # the explorer scrolls its image into view when the server moves z
            c3.button("Jump to this image's z", key="jump_upload", on_click=set_z, args=(mu_up,))

with tab_fav:
    # On disk, one file per model (vae_core.favourites): they outlive a reload and a restart.
    # A public demo keeps them in the session: strangers do not write files on the server.
    store = None if public_mode() else favourites_file(key)

    def read_favs() -> dict:
        if store is None:
            return st.session_state.setdefault("favourites", {}).setdefault(key, {})
        try:
            return load_favourites(store, d)
        except VaeError as e:
            st.session_state["fav_message"] = ("error", str(e))
            return {}

    def change_favs(change) -> None:
        """Read, change, write: each action on the file as it is on disk now."""
        favs = read_favs()
        change(favs)
        if store is not None:
            try:
                save_favourites(store, favs, key, d)
            except OSError as e:
                st.session_state["fav_message"] = ("error", f"The favourites could not be saved ({e.strerror}).")

    def save_current():
        name = st.session_state.get("fav_name", "").strip()
        change_favs(lambda f: f.__setitem__(name or f"z{len(f) + 1}", [float(v) for v in get_z()]))

    def import_file(n: int):
        imp = st.session_state.get(f"fav_import_{n}")
        if imp is None:
            return
        try:
            got_favs = import_favourites(imp.getvalue(), d)
        except VaeError as e:
            st.session_state["fav_message"] = ("error", str(e))
            return
        change_favs(lambda f: f.update(got_favs))
        # a new uploader after each import: the file is imported once, not on every rerun
        # (which brought deleted favourites back)
        st.session_state["fav_import_n"] = n + 1
        st.session_state["fav_message"] = ("success", f"Imported {len(got_favs)} favourite"
                                                      f"{'s' if len(got_favs) != 1 else ''} from {imp.name}.")

    favs = read_favs()
    if msg := st.session_state.pop("fav_message", None):
        (st.error if msg[0] == "error" else st.success)(msg[1])
    c1, c2 = st.columns([3, 1])
    c1.text_input("Name", placeholder="e.g. slanted seven", key="fav_name")
    c2.button("Save current z", width="stretch", on_click=save_current)
    for fname, fz in list(favs.items()):
        c1, c2, c3 = st.columns([3, 1, 1])
        c1.write(f"**{fname}** — [" + ", ".join(f"{v:.2f}" for v in fz[:8]) + (", …]" if d > 8 else "]"))
        c2.button("Go", key=f"fav_go_{fname}", on_click=set_z, args=(fz,))
        c3.button("Delete", key=f"fav_del_{fname}", on_click=change_favs, args=(lambda f, n=fname: f.pop(n, None),))
    st.download_button("Export favourites (JSON)", export_favourites(favs, key, d),
                       file_name=f"favourites-{key.replace('/', '_')}.json", mime="application/json",
                       disabled=not favs)
    n = st.session_state.setdefault("fav_import_n", 0)
    st.file_uploader("Import favourites (JSON)", type=["json"], key=f"fav_import_{n}", on_change=import_file,
                     args=(n,))
    st.caption("Kept for this session only (public demo)." if store is None else
               f"Saved per model in the runs folder's .favourites/ ({store.name}); export to share them.")
