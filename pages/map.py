"""Map: the test latents drawn in 2-D by PCA, t-SNE or UMAP, and decoded anywhere on the map.

The same browser explorer as Explore and PCA (ui/latent_explorer.js). A click or a drag
on empty map decodes the z that vae_core.maps gives that position: exact for PCA, through
a lattice of umap-learn's inverse_transform for UMAP, and a distance-weighted average of
the nearest map points' z for t-SNE (which has no inverse). Maps are cached on disk per
checkpoint, point set and method (the shipped models' test maps ship in cache/); a map of
the 70,000 training + test points builds in its own process (vae_core.maps.start_build)
while this page shows its progress.
"""
import time

import numpy as np
import streamlit as st

from ui_common import (Plane, current_checkpoint, encoded_image, factor_colouring, factor_names, get_z, latent_view,
                       latents_or_build, prepared_upload, set_z, show_error, show_image, show_pixels,
                       test_images_for)
from vae_core import VaeError, maps
from vae_core.images import tile
from vae_core.latents import cache_folder, nearest_indices
from vae_core.preprocess import IMAGE_TYPES

SPLIT_WORDS = {"test": "test", "all": "training + test"}
ckpt = current_checkpoint()
model = ckpt.model
d = model.latent_dim
key = st.session_state["model_key"]
st.title("Map")

if d < 2:
    st.info("This model's latent space has 1 dimension: it is its own map. Its latents are drawn on Explore.")
    st.page_link("pages/explore.py", label="Open Explore", icon=":material/explore:")
    st.stop()
got = latents_or_build(ckpt, "test")
if got is None:
    st.stop()
mu_test, labels_test = got
mu, labels = got

c1, c3, c2 = st.columns([2, 2, 1])
if "map_method" not in st.session_state and st.query_params.get("map") in maps.METHODS:
    st.session_state["map_method"] = st.query_params["map"]  # a link or a reload keeps the method
if "map_points" not in st.session_state and st.query_params.get("points") in maps.SPLITS:
    st.session_state["map_points"] = st.query_params["points"]
method = c1.radio("Method", list(maps.METHODS), format_func=maps.METHODS.get, horizontal=True, key="map_method",
                  help="PCA: the best linear plane (exact both ways). t-SNE (openTSNE, perplexity 30) keeps "
                       "neighbourhoods; UMAP (umap-learn, 15 neighbours) keeps them and more of the global shape.")
split = c3.radio("Points", list(maps.SPLITS), horizontal=True, key="map_points",
                 format_func=lambda s: {"test": f"test ({len(mu_test):,})", "all": "train + test"}[s],
                 help=f"train + test: the test latents and the training latents, up to {maps.ALL_POINTS:,} "
                      f"(MNIST, Fashion-MNIST); t-SNE and UMAP take minutes there and build in the background")
st.query_params["map"] = method
st.query_params["points"] = split


@st.cache_resource(show_spinner=False, max_entries=4)
def all_latents(ckpt_hash: str, _ckpt):
    """(mu, labels) of the train + test points, or the reason there are none (a string)."""
    try:
        return maps.split_latents(_ckpt, "all")
    except VaeError as e:
        return str(e)


if split == "all":
    with st.spinner("Encoding the training set once for this model…"):
        got_all = all_latents(ckpt.hash, ckpt)
    if isinstance(got_all, str):
        all_latents.clear()  # the data may turn up later
        st.info(got_all)
        split = "test"
    else:
        mu, labels = got_all
classes = palette = None
colour_tag = ""
if split == "test" and (names := factor_names(ckpt)):
    by = c2.selectbox("Colour points by", names, key="map_colour_by")
    got_colouring = factor_colouring(ckpt, by)
    if got_colouring is not None and len(got_colouring[0]) == len(labels):
        labels, classes, palette = got_colouring
        colour_tag = f"-{by}"


@st.cache_resource(show_spinner=False, max_entries=24)
def cached_map(ckpt_hash: str, split: str, method: str, _mu: np.ndarray):
    """The map from the disk cache, or None: keyed by the weights' hash (the latents follow from it)."""
    return maps.load_map(cache_folder(ckpt_hash), split, method, _mu)


def build_in_background(live: bool):
    """The train + test map's build: its own process. live: this fragment polls it every second."""
    if maps.load_map(cache_folder(ckpt.hash), split, method, mu) is not None:
        cached_map.clear()
        st.rerun(scope="app")  # the map is on disk: draw it
    status = maps.build_status(cache_folder(ckpt.hash), split, method)
    state = (status or {}).get("state")
    if live and state != "running":
        st.rerun(scope="app")  # it failed: redraw without the timer
    if state == "running":
        since = time.time() - float(status.get("started", time.time()))
        st.progress(min(max(float(status.get("fraction", 0.0)), 0.0), 1.0),
                    text=f"Building the {maps.METHODS[method]} map of {len(mu):,} points in the background "
                         f"({since:.0f} s): {status.get('text', '')}")
        st.caption("It goes on if you leave this page or close the tab; come back to see the map.")
        return
    if state == "failed":
        st.error(f"The last build of this map failed: {status.get('error') or 'no reason given'}")
    est = {"pca": "seconds", "tsne": "about 2.5 min on 2 cores", "umap": "about 2 min on 2 cores"}[method]
    if st.button(f"Build the {maps.METHODS[method]} map of {len(mu):,} points ({est})",
                 icon=":material/scatter_plot:", type="primary", key=f"map_build_{split}_{method}"):
        maps.start_build(ckpt, split, method)
        st.rerun(scope="app")


m = cached_map(ckpt.hash, split, method, mu)
if m is None and split == "all":
    running = ((maps.build_status(cache_folder(ckpt.hash), split, method) or {}).get("state") == "running")
    st.fragment(run_every=1.0 if running else None)(build_in_background)(running)
    st.stop()
if m is None:
    bar = st.progress(0.0, text=f"Building the {maps.METHODS[method]} map of {len(mu):,} latents once for this model…")
    try:
        maps.get_map(cache_folder(ckpt.hash), split, method, mu,
                     progress=lambda f, text: bar.progress(min(max(f, 0.0), 1.0), text=f"{maps.METHODS[method]}: {text}"))
    except VaeError as e:
        bar.empty()
        show_error(e)
        st.stop()
    bar.empty()
    cached_map.clear()
    m = cached_map(ckpt.hash, split, method, mu)
    if m is None:  # written but unreadable: the folder is read-only or full
        st.error(f"The map was built but its cache under {cache_folder(ckpt.hash)} could not be read back.")
        st.stop()

f1, f2, f3, f4 = st.columns(4)
f1.metric("Points", f"{len(m.points):,}",
          help="posterior means: " + ("the test set's" if split == "test" else "the test set's, then the training set's"))
f2.metric("Trustworthiness", f"{m.trustworthiness:.3f}",
          help=f"sklearn.manifold.trustworthiness, {maps.NEIGHBOURS} neighbours, on a fixed "
               f"{min(len(mu), maps.TRUST_SAMPLE):,}-point subsample: 1 = no map neighbour that is far in z")
f3.metric(f"{maps.NEIGHBOURS}-NN kept", f"{m.knn_kept:.0%}",
          help=f"the share of each point's {maps.NEIGHBOURS} nearest latents that are among its "
               f"{maps.NEIGHBOURS} nearest map points, over all points")
f4.metric("Build time", f"{m.seconds:.0f} s", help="fit, way back to z and these figures, when it was built")

placed = st.session_state.setdefault("map_placed", {})  # placed_key(z) -> an upload's map position


def placed_key(z) -> str:
    return f"{ckpt.hash}:{split}:{method}:" + ",".join(f"{v:.4f}" for v in z)


def place(z) -> list | None:
    """Where the marker for z goes: an upload where it was placed; else vae_core.maps.place."""
    if (key_z := placed_key(z)) in placed:
        return placed[key_z]
    return [float(v) for v in maps.place(m, mu, np.asarray(z, np.float32))[0]]


how = {"pca": "exactly: z = z̄ + x·v₁ + y·v₂",
       "umap": f"by umap-learn's inverse_transform, asked at a {maps.LATTICE}×{maps.LATTICE} lattice over the "
               f"map when it was built (one call costs seconds) and blended bilinearly between lattice nodes",
       "tsne": f"by an average: t-SNE has no inverse, so z is the 1/distance-weighted mean of the z of the "
               f"{maps.K_BACK} map points nearest each node of a {maps.LATTICE}×{maps.LATTICE} lattice, blended "
               f"bilinearly between nodes"}[method]
caption = (f"{len(m.points):,} {ckpt.dataset} {SPLIT_WORDS[split]} latents on a {m.name} map. Click a point to jump to its z; "
           f"click or drag anywhere else to decode there: a map position becomes z {how}.")
titles = {"pca": ("PC1", "PC2"), "tsne": ("t-SNE 1", "t-SNE 2"), "umap": ("UMAP 1", "UMAP 2")}[method]
zero = np.zeros(d)
plane = Plane(points=m.points, labels=labels, mu=mu, origin=m.mean if method == "pca" else zero,
              ax=m.basis[0] if method == "pca" else zero, ay=m.basis[1] if method == "pca" else zero,
              titles=titles, tag=f"map-{split}-{method}{colour_tag}", classes=classes, palette=palette,
              lattice=m.lattice, box=m.box, place=None if method == "pca" else place)
test_images = test_images_for(ckpt)


@st.fragment
def explorer():
    """Reruns for each z the browser sends; the nearest test images follow z."""
    latent_view(f"map_{split}_{method}_{key}", ckpt, [], plane, caption)
    if test_images is not None:
        idx = nearest_indices(mu_test, get_z(), k=8)
        strip = tile(test_images[idx][None], pad=2, pad_value=60)
        show_pixels(strip, 8 * 64, "the 8 nearest test images to z: " +
                    ", ".join(f"#{i} {ckpt.class_names[labels_test[i]]}" for i in idx))


explorer()

st.divider()


@st.cache_resource(show_spinner="Recomputing the t-SNE affinities to place new points (seconds)…", max_entries=4)
def tsne_embedding(ckpt_hash: str, split: str, _mu: np.ndarray, _m):
    return maps.tsne_embedding(_mu, _m)


st.markdown("**Place an image on the map**")
up = st.file_uploader("Upload an image (a digit or garment, any size; dark-on-light photos are inverted)",
                      type=IMAGE_TYPES, key="map_upload")
if up is not None:
    try:
        prep = prepared_upload(up, "auto", model.image_shape)
    except VaeError as e:
        show_error(e)
    else:
        mu_up, recon = encoded_image(ckpt.hash, model, prep.image)
        emb = tsne_embedding(ckpt.hash, split, mu, m) if method == "tsne" else None
        xy = [float(v) for v in maps.place(m, mu, mu_up, emb)[0]]
        placed[placed_key(mu_up)] = xy
        by = {"pca": "projected exactly", "tsne": "placed by openTSNE's transform among the fitted points",
              "umap": f"placed at the 1/distance-weighted mean map position of its {maps.K_BACK} nearest "
                      f"latents on the map (the start of UMAP's own transform)"}[method]
        c1, c2, c3 = st.columns([1, 1, 2])
        show_image(prep.image, 140, f"preprocessed ({prep.image.shape[1]}×{prep.image.shape[0]})", c1)
        show_image(recon, 140, "reconstruction", c2)
        c3.write(f"At ({xy[0]:.2f}, {xy[1]:.2f}) on this map: {by}.")
        c3.button("Show it on the map", key="map_jump_upload", on_click=set_z, args=(mu_up,),
                  icon=":material/my_location:")
