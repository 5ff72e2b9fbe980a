"""Streamlit glue shared by the pages: the model picker, cached loading, z in the URL.

Everything computed lives in vae_core; this module only caches and lays out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from vae_core import VaeError
from vae_core.catalog import DEFAULT_MODEL, ModelEntry, list_models
from vae_core.checkpoint import WEIGHTS, load_checkpoint
from vae_core.data import dataset_available, load_dataset
from vae_core.device import describe_device, resolve_device
from vae_core.images import png_bytes
from vae_core.latents import encode_dataset, load_cached_latents

def public_mode() -> bool:
    """VAE_PUBLIC=1: a shared demo. The explorer pages only: no Train page, nothing that
    starts, cancels or deletes a job, writes beside a model or names a server path."""
    import os
    return os.environ.get("VAE_PUBLIC", "") not in ("", "0")


Z_RANGE = 4.0  # sliders span [-4, 4]: the prior's +-4 sigma
DISPLAY = 420  # px: the scatter and the decoded image share this size


@st.cache_resource(show_spinner="Loading model…")
def get_checkpoint(path: str, mtime_ns: int):
    """One loaded model per checkpoint file version, shared by all sessions (eval, no grad)."""
    return load_checkpoint(path, resolve_device("auto"))


@st.cache_data(show_spinner=False, max_entries=16)
def get_cached_latents(ckpt_hash: str, split: str):
    lat = load_cached_latents(ckpt_hash, split)
    if lat is None:
        return None
    return lat.mu, lat.labels


def _run_through_app() -> None:
    """Rerun via app.py when a page script was started on its own.

    With a folder named pages/ beside app.py, Streamlit assumes its old
    "pages directory" mode until st.navigation has run once in the process; so
    the very first request after a start that goes straight to /explore runs
    pages/explore.py without app.py (no model picker, no navigation). Clearing that
    flag and rerunning sends the request through app.py and st.navigation.
    """
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.error("This page needs the app's model picker: open the app from its start page.")
    st.stop()


def ensure_app() -> None:
    """First line of every page: make sure this run came through app.py."""
    if "model_entry" not in st.session_state:
        _run_through_app()


def current_checkpoint():
    ensure_app()
    entry: ModelEntry = st.session_state["model_entry"]
    weights = entry.path / WEIGHTS
    try:
        return get_checkpoint(str(entry.path), weights.stat().st_mtime_ns)
    except FileNotFoundError:
        st.error(f"The model {entry.key} is gone from {entry.path}; pick another model in the sidebar.")
    except VaeError as e:
        st.error(f"The model {entry.key} cannot be loaded: {e} Pick another model in the sidebar.")
    st.stop()


def latents_or_build(ckpt, split: str = "test"):
    """(mu, labels) from the cache; builds the cache with a progress bar when the data is here."""
    got = get_cached_latents(ckpt.hash, split)
    if got is not None:
        return got
    bar = st.progress(0.0, text=f"Encoding the {split} set once for this model…")
    try:
        encode_dataset(ckpt, split, progress=lambda f: bar.progress(f, text=f"Encoding the {split} set… {f:.0%}"))
    except VaeError as e:
        bar.empty()
        st.warning(f"No latent cache for this model and the dataset is not available: {e}")
        return None
    bar.empty()
    get_cached_latents.clear()
    return get_cached_latents(ckpt.hash, split)


def _parse_z(text: str | None, dim: int):
    if not text:
        return None
    try:
        z = [float(v) for v in text.split(",")]
    except ValueError:
        return None
    if len(z) != dim or not all(np.isfinite(z)):
        return None
    return [float(np.clip(v, -Z_RANGE, Z_RANGE)) for v in z]


def sidebar_model_picker() -> ModelEntry | None:
    """The model picker; the choice is kept in session state and mirrored in the URL."""
    entries = list_models()
    if not entries:
        st.sidebar.error("No models found: the checkpoints/ folder is empty and no training run has finished.")
        return None
    keys = [e.key for e in entries]
    by_key = {e.key: e for e in entries}
    wanted = st.session_state.get("model_key") or st.query_params.get("model") or DEFAULT_MODEL
    if wanted not in by_key:
        if "model" in st.query_params:
            st.sidebar.warning(f"Model {st.query_params['model']!r} from the link was not found; showing {keys[0]}.")
        wanted = keys[0]
    key = st.sidebar.selectbox("Model", keys, index=keys.index(wanted),
                               format_func=lambda k: by_key[k].label, key="model_picker",
                               help="Shipped models and finished training runs: dataset, model, latent dim, "
                                    "test loss (negative ELBO in nats per image)")
    entry = by_key[key]
    st.sidebar.caption(entry.label)
    from vae_core.evaluate import read_metrics
    try:  # scores written for other weights in this folder are not shown as this model's
        # the page loads this same cached checkpoint next; its hash was taken as it was read
        m = read_metrics(entry.path, get_checkpoint(str(entry.path), (entry.path / WEIGHTS).stat().st_mtime_ns).hash)
    except (OSError, VaeError):
        m = None
    if m and m.get("nll") is not None:
        from vae_core.compare import image_count
        st.sidebar.caption(f"NLL {m['nll']:.2f} nats (IWAE, K={m.get('iw_samples')}, {image_count(m)} images) · "
                           f"{m.get('active_units')}/{entry.latent_dim} active units · details on Compare")
    if st.session_state.get("model_key") != key:
        # a new model: take z from the URL on first load (a copied link), else start at 0
        z = _parse_z(st.query_params.get("z"), entry.latent_dim) if "model_key" not in st.session_state else None
        set_z(z or [0.0] * entry.latent_dim)
        st.session_state["model_key"] = key
    st.session_state["model_entry"] = entry
    st.query_params["model"] = key
    st.sidebar.caption(f"Device: {describe_device(resolve_device('auto'))}")
    return entry


def get_z() -> np.ndarray:
    return np.array(st.session_state["z"], dtype=np.float32)


def set_z(z) -> None:
    """Set z (clipped to the slider range) in the state and the URL.

    Slider widgets follow through sync_sliders(), called before they are drawn:
    Streamlit forbids changing a widget's state after it was created in a run.
    """
    z = [float(np.clip(v, -Z_RANGE, Z_RANGE)) for v in np.asarray(z, dtype=float).ravel()]
    st.session_state["z"] = z
    st.query_params["z"] = ",".join(f"{v:.3f}" for v in z)


def sync_sliders(dims) -> None:
    z = st.session_state["z"]
    for i in dims:
        if st.session_state.get(f"z_slider_{i}") != z[i]:
            st.session_state[f"z_slider_{i}"] = z[i]


@st.cache_data(show_spinner=False, max_entries=4)
def get_test_images(dataset: str):
    """The test split's uint8 images, or None when the dataset is not on this machine."""
    try:
        return load_dataset(dataset, "test", download=False).images.numpy()
    except VaeError:
        return None


def train_cache_available(ckpt) -> bool:
    """Whether the training-set latents are cached, or could be built from local data."""
    return load_cached_latents(ckpt.hash, "train") is not None or dataset_available(ckpt.dataset)


def session_scatter(ckpt, with_train: bool, dx: int, dy, mu: np.ndarray, labels: np.ndarray):
    """(figure, axis ranges) of the latent scatter, built once per session, model and axes.

    The figure never changes while z moves (the marker is a separate overlay), so
    keeping the object spares Plotly's validation of every point on each full rerun.
    """
    from vae_core.plots import latent_scatter, square_ranges
    sig = (ckpt.hash, with_train, dx, dy)
    cached = st.session_state.get("_scatter")
    if cached is None or cached[0] != sig:
        ys = mu[:, dy] if dy is not None else np.zeros(len(mu), np.float32)
        points = np.stack([mu[:, dx], ys], 1)
        ranges = square_ranges(points)
        fig = latent_scatter(points, labels, ckpt.class_names, size=DISPLAY, ranges=ranges,
                             axis_titles=(f"z[{dx}]", f"z[{dy}]" if dy is not None else ""))
        st.session_state["_scatter"] = cached = (sig, fig, ranges)
    return cached[1], cached[2]


@st.cache_data(show_spinner="Fitting PCA…", max_entries=8)
def _pca_for(ckpt_hash: str, mu: np.ndarray):
    from vae_core.geometry import fit_pca
    return fit_pca(mu)


def get_pca(ckpt):
    """PCA of the test-set latents (cached per checkpoint), or None with a message shown."""
    got = latents_or_build(ckpt, "test")
    return None if got is None else _pca_for(ckpt.hash, got[0])


@st.cache_data(show_spinner="Estimating the intrinsic dimension…", max_entries=8)
def _twonn_for(ckpt_hash: str, mu: np.ndarray) -> float:
    from vae_core.geometry import twonn_dimension
    return twonn_dimension(mu)


def get_twonn(ckpt) -> float:
    return _twonn_for(ckpt.hash, latents_or_build(ckpt, "test")[0])


def show_image(img: np.ndarray, px: int, caption: str | None = None, where=st) -> None:
    """Show a uint8 image as a PNG upscaled with nearest pixels to about px wide.

    The PNG is made at exactly the display width and sent as PNG: Streamlit would
    otherwise resize it bilinearly and re-encode it as JPEG, blurring the pixels.
    """
    scale = max(1, round(px / img.shape[1]))
    where.image(png_bytes(img, scale=scale), width=img.shape[1] * scale, caption=caption, output_format="PNG")


def show_pixels(img: np.ndarray, px: int, caption: str, where=st, attrs: dict | None = None) -> None:
    """Show a small uint8 image inline at px wide with crisp pixels: the hot path.

    The 28x28 PNG (under 1 kB) travels inside the page update as a data URI and the
    browser scales it with image-rendering: pixelated. st.image would register a media
    file that the browser then fetches in a second round trip (about 130 ms per slider
    step here: the largest share of the latency).
    """
    import base64
    data = base64.b64encode(png_bytes(img)).decode()
    h = round(px * img.shape[0] / img.shape[1])
    extra = "".join(f' {k}="{v}"' for k, v in (attrs or {}).items())
    where.markdown(f'<figure style="margin:0"><img alt="{caption}"{extra} src="data:image/png;base64,{data}" '
                   f'style="width:{px}px;height:{h}px;max-width:100%;object-fit:fill;image-rendering:pixelated;display:block;'
                   f'border-radius:4px"/>'
                   f'<figcaption style="text-align:center;font-size:0.875rem;opacity:0.6">{caption}</figcaption>'
                   f'</figure>', unsafe_allow_html=True)


STATIC_DECODERS = Path(__file__).parent / "static" / "decoders"  # served at app/static/decoders/


@st.cache_resource(max_entries=8, show_spinner=False)
def _decoder_file(ckpt_hash: str, _model) -> str | None:
    """Write the decoder's weights for the browser once per checkpoint; its URL, or None
    when the browser cannot run this decoder (the server-only path)."""
    from vae_core.checkpoint import atomic_write_bytes
    from vae_core.webdecoder import decoder_blob
    try:
        blob = decoder_blob(_model)
    except VaeError:
        return None
    path = STATIC_DECODERS / f"{ckpt_hash}.bin"
    try:
        if not path.is_file() or path.read_bytes() != blob:
            atomic_write_bytes(path, blob)
    except OSError:
        return None  # a read-only install: keep the server-only path
    return f"app/static/decoders/{ckpt_hash}.bin"


_CLIENT_DECODER = None


def browser_decodes(ckpt) -> bool:
    """Whether the browser decodes this model's slider steps itself (ui/client_decoder.js).

    VAE_BROWSER_DECODE=0 turns it off: every step then waits for the server (the
    baseline of benchmarks/ui_latency.py).
    """
    import os
    return os.environ.get("VAE_BROWSER_DECODE", "1") != "0" and _decoder_file(ckpt.hash, ckpt.model) is not None


def send_decoder_to_browser(ckpt) -> None:
    """Mount the invisible component that tells the browser where this model's decoder is.

    The browser fetches the weights (about 3 MB) once per model, after the page has
    drawn, and keeps them per model hash; the component's own data is a few bytes.
    """
    global _CLIENT_DECODER
    if not browser_decodes(ckpt):
        return
    if _CLIENT_DECODER is None:
        js = (Path(__file__).parent / "ui" / "client_decoder.js").read_text()
        _CLIENT_DECODER = st.components.v2.component("vae_client_decoder", js=js, isolate_styles=False)
    with st.sidebar:  # invisible (height 0); at the sidebar's end it shifts nothing
        _CLIENT_DECODER(key="client_decoder", data={"model": ckpt.hash, "url": _decoder_file(ckpt.hash, ckpt.model)},
                        height=0)


def show_error(e: Exception) -> None:
    """Show a user-facing error without a traceback."""
    st.error(str(e), icon="⚠️")
