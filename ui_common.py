"""Streamlit glue shared by the pages: the model picker, cached loading, z in the URL.

Everything computed lives in vae_core; this module only caches and lays out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from vae_core import VaeError
from vae_core.catalog import DEFAULT_MODEL, ModelEntry, list_models
from vae_core.checkpoint import WEIGHTS, load_checkpoint
from vae_core.data import SPRITE_NAMES, dataset_available, load_dataset
from vae_core.device import describe_device, resolve_device
from vae_core.images import png_bytes
from vae_core.latents import encode_dataset, load_cached_latents


def public_mode() -> bool:
    """VAE_PUBLIC=1: a shared demo. The explorer pages only: no Train page, nothing that
    starts, cancels or deletes a job, writes beside a model or names a server path."""
    import os
    return os.environ.get("VAE_PUBLIC", "") not in ("", "0")


def plain(text) -> str:
    """Text from a link, a folder name or a config shown as itself in Markdown elements
    (st.caption, st.warning, st.error): every Markdown character is escaped, so a crafted
    model name cannot draw a link or fetch an image (a tracking pixel)."""
    import re
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", str(text))


Z_RANGE = 4.0  # sliders span [-4, 4]: the prior's +-4 sigma
Z_SPILL = 0.05  # share of a model's test means past ±4 that widens its slider range (z_range_of)
Z_RANGE_MAX = 16.0  # the widest slider range z_range_of gives a continuous model
Z_OFF_CENTRE = 1.0  # a test-mean centre this far from 0 (in σ) is where the model opens (start_z)
DISPLAY = 460  # px: the largest side of the scatter's plot area and of the decoded image (the same)


@st.cache_resource(show_spinner="Loading model…")
def get_checkpoint(path: str, mtime_ns: int):
    """One loaded model per checkpoint file version, shared by all sessions (eval, no grad)."""
    return load_checkpoint(path, resolve_device("auto"))


def _shared(*arrays):
    """Arrays every session reads and none may change: one copy in the process.

    st.cache_data hands each call its own unpickled copy, and a session's fragment holds
    on to what its page read: eight sessions on Explore held eight copies of the test
    images and latents (benchmarks/load.py). Read-only, so a slip fails loudly."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


@st.cache_resource(show_spinner=False, max_entries=16)
def get_cached_latents(ckpt_hash: str, split: str):
    lat = load_cached_latents(ckpt_hash, split)
    if lat is None:
        return None
    return _shared(lat.mu, lat.labels)


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
        st.error(f"The model {plain(entry.key)} is gone from {plain(entry.path)}; pick another model in the sidebar.")
    except VaeError as e:
        st.error(f"The model {plain(entry.key)} cannot be loaded: {plain(e)} Pick another model in the sidebar.")
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
    got = get_cached_latents(ckpt.hash, split)
    if split == "test" and got is not None:  # the model's slider range can follow its means now
        st.session_state["z_range"] = z_range_of(ckpt.model, got[0])
    return got


def z_range_of(model, mu=None) -> float:
    """The bound on |z| of the sliders, links and set_z: the prior's ±4σ, with two exceptions.

    A VQ-VAE's z is the encoder's unbounded output. Its codebook vectors may lie beyond 4, and a
    picked code clipped to ±4 would snap to another code, so its bound covers the codebook (to 0.5).
    A continuous model whose test means (mu, the latent cache, when there is one) spill past ±4 in
    more than Z_SPILL of the points gets a bound that covers them all (to 0.5, at most Z_RANGE_MAX):
    color-sprites-z10 has 24 % of its means there, and a clicked point or its link was clipped to a
    z that is not the point's. Models that stay inside (every other shipped one: 2.3 % at most)
    keep ±4 and its slider steps."""
    discrete = getattr(model, "discrete", None)
    if discrete == "vq":
        return max(Z_RANGE, math.ceil(2 * float(model.quantizer.codebook.abs().max())) / 2)
    if discrete is None and mu is not None and len(mu):
        reach = np.abs(np.asarray(mu, dtype=np.float64)).max(1)
        if float((reach > Z_RANGE).mean()) > Z_SPILL:
            return min(Z_RANGE_MAX, max(Z_RANGE, math.ceil(2 * float(reach.max())) / 2))
    return Z_RANGE


def start_z(model, mu=None) -> list[float]:
    """Where a model opens without a z in its link: the prior's mean 0, unless the centre of the
    model's test means (mu, the latent cache) lies more than Z_OFF_CENTRE (one prior σ) from it in
    some coordinate. Then z = 0 is off the posterior and decodes to no image of the data
    (color-sprites-z10: its centre is up to 2.35 out and z = 0 draws a dim checkered smear), so
    it opens at that centre, to 0.05 like a slider step."""
    d = int(model.latent_dim)
    if getattr(model, "discrete", None) is None and mu is not None and len(mu):
        centre = np.asarray(mu, dtype=np.float64).mean(0)
        if float(np.abs(centre).max()) > Z_OFF_CENTRE:
            return [round(float(v), 2) for v in np.round(centre / 0.05) * 0.05]
    return [0.0] * d


def z_limit() -> float:
    """The current model's z bound (z_range_of), as the sidebar recorded it when the model was picked."""
    return st.session_state.get("z_range", Z_RANGE)


def parse_z(text: str | None, dim: int, limit: float = Z_RANGE) -> tuple[list[float] | None, str | None]:
    """z from a link's `z=` value: (z or None, a notice for the person or None).

    A z of the wrong length or with values that are not numbers is refused with a
    notice (z starts at 0); values beyond ±limit (the sliders' range) are clipped, and say so.
    """
    if not text:
        return None, None
    try:
        z = [float(v) for v in text.split(",")]
    except ValueError:
        return None, f"The link's z ({text[:60]!r}) is not a list of numbers; z starts at 0."
    if len(z) != dim:
        return None, (f"The link's z has {len(z)} value{'s' if len(z) != 1 else ''} but this model has {dim} "
                      f"latent dimension{'s' if dim != 1 else ''}; z starts at 0.")
    if not all(np.isfinite(z)):
        return None, "The link's z holds a NaN or an infinity; z starts at 0."
    clipped = [float(np.clip(v, -limit, limit)) for v in z]
    if clipped != z:
        return clipped, (f"The link's z had values outside [−{limit:g}, {limit:g}], the sliders' range; "
                         f"they were clipped.")
    return z, None


def picker_key() -> str:
    """The model picker's widget key (a callback may set its value through it)."""
    return f"model_picker{st.session_state.get('picker_gen') or ''}"


def sidebar_model_picker() -> ModelEntry | None:
    """The model picker; the choice is kept in session state and mirrored in the URL."""
    problems = []
    entries = list_models(problems=problems)
    for key, reason in problems:  # a bad folder costs one line here, never the app
        st.sidebar.caption(f":material/error: {plain(key)} cannot be loaded: {plain(reason)}")
    if not entries:
        st.sidebar.error("No models found: the checkpoints/ folder is empty and no training run has finished.")
        return None
    keys = [e.key for e in entries]
    by_key = {e.key: e for e in entries}
    was = st.session_state.get("model_key")
    wanted = was or st.query_params.get("model") or DEFAULT_MODEL
    if wanted not in by_key:
        if was:  # the model on screen went away under this session (its run deleted or damaged)
            why = dict(problems).get(was)
            st.session_state["model_gone"] = (keys[0], (
                f"{plain(was)}, the model you were viewing, " + (f"can no longer be loaded ({plain(why)})" if why
                else "is gone: its run was deleted or moved") + f". Showing {plain(keys[0])}."))
            # a fresh picker: the browser would send the old one the vanished model back
            st.session_state["picker_gen"] = st.session_state.get("picker_gen", 0) + 1
        elif "model" in st.query_params:
            st.sidebar.warning(f"Model {plain(repr(st.query_params['model'][:80]))} from the link was not found; "
                               f"showing {plain(keys[0])}.")
        wanted = keys[0]
    key = st.sidebar.selectbox("Model", keys, index=keys.index(wanted),
                               format_func=lambda k: by_key[k].label,
                               key=picker_key(),
                               help="Shipped models and finished training runs: dataset, model, latent dim, "
                                    "test loss (negative ELBO in nats per image)")
    entry = by_key[key]
    st.sidebar.caption(plain(entry.label))
    from vae_core.evaluate import read_metrics
    ck = None
    try:  # scores written for other weights in this folder are not shown as this model's
        # the page loads this same cached checkpoint next; its hash was taken as it was read
        ck = get_checkpoint(str(entry.path), (entry.path / WEIGHTS).stat().st_mtime_ns)
        m = read_metrics(entry.path, ck.hash)
    except (OSError, VaeError):
        m = None
    if m and m.get("nll") is not None:
        from vae_core.compare import image_count
        st.sidebar.caption(f"NLL {m['nll']:.2f} nats (IWAE, K={m.get('iw_samples')}, {image_count(m)} images) · "
                           f"{m.get('active_units')}/{entry.latent_dim} active units · details on Compare")
    if st.session_state.get("model_key") != key:
        # a new model: take z from the URL on first load (a copied link), else start at 0 (or,
        # for a model whose test means sit off the origin, at their centre: start_z)
        cached = get_cached_latents(ck.hash, "test") if ck is not None else None
        mu = None if cached is None else cached[0]
        st.session_state["z_range"] = z_range_of(ck.model, mu) if ck is not None else Z_RANGE
        z, notice = (parse_z(st.query_params.get("z"), entry.latent_dim, z_limit())
                     if "model_key" not in st.session_state else (None, None))
        st.session_state["model_key"] = key
        start = start_z(ck.model, mu) if ck is not None and not notice else [0.0] * entry.latent_dim
        set_z(z or start)
        st.session_state.pop("z_notice", None)
        st.session_state["z_start_note"] = z is None and any(start)
        if notice:
            st.session_state["z_notice"] = notice
    st.session_state["model_entry"] = entry
    if gone := st.session_state.get("model_gone"):  # said until another model is picked
        if gone[0] == key:
            st.sidebar.warning(gone[1], icon=":material/delete:")
        else:
            del st.session_state["model_gone"]
    if notice := st.session_state.get("z_notice"):
        st.sidebar.warning(notice, icon=":material/link_off:")  # until another model is picked
    if st.session_state.get("z_start_note"):
        st.sidebar.caption("z opened at the centre of this model's test means, not 0: its z = 0 lies off "
                           "them and decodes to no image of the data (Reset z to 0 goes there).")
    sync_url()
    st.sidebar.caption(f"Device: {describe_device(resolve_device('auto'))}")
    return entry


def sync_url() -> None:
    """Model and z in the URL on every run of every page: Streamlit drops the query
    string when the sidebar switches pages, and a copied link must reopen the same point."""
    st.query_params["model"] = st.session_state["model_key"]
    st.query_params["z"] = z_text(st.session_state["z"])


def get_z() -> np.ndarray:
    return np.array(st.session_state["z"], dtype=np.float32)


def set_z(z, client: bool = False) -> None:
    """Set z (clipped to the slider range, z_limit) in the state and the URL.

    A change the server makes (reset, sample, jump, a link, a picked point) bumps
    z_version, which tells the browser's explorer (ui/latent_explorer.js) to take this
    z; a z the browser sent (client=True) does not, so the server never moves the
    sliders under the user's hand.
    """
    lim = z_limit()
    z = [float(np.clip(v, -lim, lim)) for v in np.asarray(z, dtype=float).ravel()]
    st.session_state["z"] = z
    if not client:
        st.session_state["z_version"] = st.session_state.get("z_version", 0) + 1
    st.query_params["z"] = z_text(z)


def z_text(z) -> str:
    """z as the URL and the explorer write it: '0.500,-1.250'."""
    return ",".join(f"{v:.3f}" for v in z)


@st.cache_resource(show_spinner=False, max_entries=4)
def get_test_images(dataset: str, image_size: int | None = None, channels: int | None = None):
    """The test split's uint8 images in display layout ((N, H, W) grey, (N, H, W, 3) colour;
    shared, read-only), or None when the dataset is not on this machine. image_size and
    channels (None: the dataset's own) give the split in a model's shape."""
    from vae_core.images import to_display
    try:
        images = load_dataset(dataset, "test", download=False, image_size=image_size, channels=channels).images
        return _shared(np.ascontiguousarray(to_display(images)))[0]
    except VaeError:
        return None


def test_images_for(ckpt):
    """The test images of a checkpoint's dataset in its model's shape (display layout), or None."""
    c, size, _ = ckpt.model.image_shape
    return get_test_images(ckpt.dataset, size, c)


def upload_digest(up) -> str:
    """sha256 of an uploaded file's bytes, taken once per upload (Streamlit's file_id):
    hashing 20 MB on every rerun would cost ~30 ms a time."""
    import hashlib
    memo = st.session_state.setdefault("_upload_digests", {})
    fid = getattr(up, "file_id", None) or f"{up.name}:{up.size}"
    if fid not in memo:
        memo[fid] = hashlib.sha256(up.getvalue()).hexdigest()
        while len(memo) > 16:  # a few uploads per page; the oldest go
            memo.pop(next(iter(memo)))
    return memo[fid]


@st.cache_resource(show_spinner="Reading the image…", max_entries=16)
def _decoded_upload(digest: str, name: str, colour: bool, _up):
    """decode_upload by content, shared by sessions: (grey or RGB array, notes) or the
    refusal's message (a refusal is remembered too: a corrupt 20 MB file is not decoded again)."""
    from vae_core.preprocess import decode_upload
    try:
        gray, notes = decode_upload(_up.getvalue(), name, colour=colour)
    except VaeError as e:
        return str(e)
    gray.flags.writeable = False
    return gray, notes


@st.cache_resource(show_spinner=False, max_entries=64)
def _framed_upload(digest: str, name: str, invert: str, shape: tuple, _up):
    """A decoded upload framed for a model's image shape (C, H, W) and one invert choice
    (vae_core.preprocess.frame_for_shape), or the refusal's message. _up (the uploaded
    file, not hashed: digest names its bytes) is read only when this is not cached."""
    from vae_core.preprocess import frame_for_shape
    got = _decoded_upload(digest, name, shape[0] == 3, _up)
    if isinstance(got, str):
        return got
    try:
        prepared = frame_for_shape(got[0], shape, invert)
    except VaeError as e:
        return str(e)
    prepared.notes = got[1] + prepared.notes
    prepared.image.flags.writeable = False
    return prepared


def prepared_upload(up, invert: str, shape: tuple = (1, 28, 28)):
    """An st.file_uploader file for a model of images `shape` (C, H, W), decoded once per
    content (whatever widgets change later: a rerun costs a dictionary lookup) and framed
    once per invert choice. Raises VaeError."""
    got = _framed_upload(upload_digest(up), up.name, invert, tuple(int(v) for v in shape), up)
    if isinstance(got, str):
        raise VaeError(got)
    return got


@st.cache_data(show_spinner=False, max_entries=64)
def encoded_image(ckpt_hash: str, _model, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, reconstruction) of one image (display layout) by content; _model is not hashed: ckpt_hash names its weights."""
    from vae_core.images import reconstruct
    mu, recon = reconstruct(_model, image[None])
    return mu[0], recon[0]


def train_cache_available(ckpt) -> bool:
    """Whether the training-set latents are cached, or could be built from local data
    (not for the sprites grid: encoding its 727,280 training images would take the
    server many minutes)."""
    if load_cached_latents(ckpt.hash, "train") is not None:
        return True
    return dataset_available(ckpt.dataset) and ckpt.dataset not in SPRITE_NAMES


# Ten steps of viridis: an ordered factor (scale, orientation, position) reads as a ramp.
VIRIDIS10 = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e",
             "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"]


@st.cache_resource(show_spinner=False, max_entries=4)
def _test_factors(dataset: str):
    try:
        ds = load_dataset(dataset, "test", download=False)
    except VaeError:
        return None
    if getattr(ds, "factors", None) is None:
        return None
    return _shared(np.asarray(ds.factors))[0], tuple(ds.factor_names), tuple(ds.factor_sizes)


def factor_colouring(ckpt, factor: str):
    """(labels, legend names, palette) colouring the test latents by one generative factor
    of their images, binned into at most 10 ordered steps; None for datasets without factors."""
    got = _test_factors(ckpt.dataset)
    if got is None or factor not in got[1]:
        return None
    factors, names, sizes = got
    k = names.index(factor)
    size = sizes[k]
    if factor == "shape":  # the shapes are the model's classes already
        return factors[:, k].astype(np.int64), None, None
    if size <= 10:  # scale: each value its own step of the ramp
        ramp = [VIRIDIS10[round(i * 9 / max(size - 1, 1))] for i in range(size)]
        return factors[:, k].astype(np.int64), [f"{factor} {i}" for i in range(size)], ramp
    bins = 10
    labels = (factors[:, k] * bins) // size
    legend = [f"{factor} {lo * size // bins}–{((lo + 1) * size - 1) // bins}" for lo in range(bins)]
    return labels.astype(np.int64), legend, VIRIDIS10


def factor_names(ckpt) -> tuple | None:
    got = _test_factors(ckpt.dataset) if ckpt.dataset in SPRITE_NAMES else None
    return None if got is None else got[1]


def factors_of_test_set(ckpt) -> np.ndarray | None:
    """The ground-truth factors (N, K) of the checkpoint's test images (shared, read-only), or
    None for datasets without them or not on this machine."""
    got = _test_factors(ckpt.dataset) if ckpt.dataset in SPRITE_NAMES else None
    return None if got is None else got[0]


@st.cache_resource(show_spinner="Fitting PCA…", max_entries=8)
def _pca_for(ckpt_hash: str, _mu: np.ndarray):
    """Keyed by the weights' hash: the test latents are a function of it."""
    from vae_core.geometry import fit_pca
    return fit_pca(_mu)


def get_pca(ckpt):
    """PCA of the test-set latents (cached per checkpoint), or None with a message shown."""
    got = latents_or_build(ckpt, "test")
    return None if got is None else _pca_for(ckpt.hash, got[0])


@st.cache_resource(show_spinner="Fitting a 10-component Gaussian mixture to the test latents…", max_entries=8)
def _mixture_for(ckpt_hash: str, _mu: np.ndarray):
    from vae_core.quality import fit_latent_mixture
    return fit_latent_mixture(_mu)


def sample_z(ckpt, source: str, n: int, seed: int | None = None) -> np.ndarray | None:
    """n draws of z (n, D): from the prior N(0, I), or from a 10-component Gaussian mixture
    fitted to the test set's posterior means (Ghosh et al. 2020); None when the mixture has
    no latents to fit (a message is shown)."""
    rng = np.random.default_rng(seed)
    d = ckpt.model.latent_dim
    if source == "prior":
        return rng.standard_normal((n, d)).astype(np.float32)
    from vae_core.quality import sample_latent_mixture
    got = latents_or_build(ckpt, "test")
    if got is None:
        return None
    return sample_latent_mixture(_mixture_for(ckpt.hash, got[0]), n, seed=int(rng.integers(2**31)))


SAMPLE_SOURCES = {"prior": "the prior N(0, I)", "mixture": "a mixture fitted to q(z)"}
SAMPLE_HELP = ("q(z), the aggregate posterior, is where the encoder puts the data; the prior can leave holes in it. "
               "The mixture has 10 full-covariance Gaussians fitted to the test latents (Ghosh et al. 2020, "
               "\"From Variational to Deterministic Autoencoders\"); its samples usually look more like the data.")


@st.cache_resource(show_spinner="Estimating the intrinsic dimension…", max_entries=8)
def _twonn_for(ckpt_hash: str, _mu: np.ndarray) -> float:
    from vae_core.geometry import twonn_dimension
    return twonn_dimension(_mu)


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


STATIC = Path(__file__).parent / "static"  # served at app/static/ (server.enableStaticServing)


def _static_file(kind: str, name: str, blob: bytes) -> str | None:
    """Write blob once as static/<kind>/<name>.bin (atomically); its URL, or None on a read-only install."""
    from vae_core.files import atomic_write_bytes
    path = STATIC / kind / f"{name}.bin"
    try:
        if not path.is_file() or path.read_bytes() != blob:
            atomic_write_bytes(path, blob)
    except OSError:
        return None
    return f"app/static/{kind}/{name}.bin"


def _data_file(ckpt_hash: str, blob: bytes) -> str | None:
    """A model's data for the browser (scatter points, a map's lattice) as static/points/
    <hash>-<content digest>.bin: new content gets a new URL, never a stale browser copy."""
    from vae_core.files import sha256_hex
    return _static_file("points", f"{ckpt_hash}-{sha256_hex(blob)[:12]}", blob)


@st.cache_resource(max_entries=8, show_spinner=False)
def _decoder_file(ckpt_hash: str, _model) -> str | None:
    """The decoder's weights for the browser, once per checkpoint; their URL, or None
    when the browser cannot run this decoder (the server's images are used then)."""
    from vae_core.webdecoder import decoder_blob
    try:
        blob = decoder_blob(_model)
    except VaeError:
        return None
    return _static_file("decoders", ckpt_hash, blob)


@st.cache_resource(max_entries=32, show_spinner=False)
def _points_file(ckpt_hash: str, tag: str, _xy: np.ndarray, _labels: np.ndarray) -> str | None:
    """The scatter as one static file the browser fetches once: uint32 N, then x and y
    as float32 and the labels as uint8 (ui/latent_explorer.js loadPoints)."""
    n = len(_xy)
    blob = (np.uint32(n).tobytes() + np.ascontiguousarray(_xy[:, 0], np.float32).tobytes()
            + np.ascontiguousarray(_xy[:, 1], np.float32).tobytes() + (np.asarray(_labels) % 256).astype(np.uint8).tobytes())
    return _data_file(ckpt_hash, blob)


@st.cache_resource(max_entries=32, show_spinner=False)
def _lattice_file(ckpt_hash: str, tag: str, _lattice: np.ndarray, _box: np.ndarray) -> str | None:
    """A map's way back to z as one static file (ui/latent_explorer.js loadLattice):
    uint32 G, uint32 D, float64 x0 x1 y0 y1, then the float32 z of each lattice node."""
    g, _, d = _lattice.shape
    blob = (np.asarray([g, d], np.uint32).tobytes() + np.asarray(_box, np.float64).ravel().tobytes()
            + np.ascontiguousarray(_lattice, np.float32).tobytes())
    return _data_file(ckpt_hash, blob)


def forget_served_files(ckpt_hash: str | None) -> None:
    """Remove the decoder and points files served for a deleted model (no download of
    its weights stays behind) and forget their cached URLs."""
    if not ckpt_hash:
        return
    for f in [STATIC / "decoders" / f"{ckpt_hash}.bin", *(STATIC / "points").glob(f"{ckpt_hash}-*.bin")]:
        f.unlink(missing_ok=True)
    _decoder_file.clear()
    _points_file.clear()


def browser_decoder_url(ckpt) -> str | None:
    """Where the browser fetches this model's decoder (ui/latent_explorer.js decodes z
    itself), or None: a decoder it cannot run, a read-only install, or
    VAE_BROWSER_DECODE=0, where every picture comes from the server (the baseline of
    benchmarks/ui_latency.py)."""
    import os
    return _decoder_file(ckpt.hash, ckpt.model) if os.environ.get("VAE_BROWSER_DECODE", "1") != "0" else None


@dataclass
class Plane:
    """What the scatter shows: 2-D points and how any z maps onto the same axes.

    A point's position is ((z - origin)·ax, (z - origin)·ay): the latent axes on
    Explore (origin 0, ax = e_dx), principal axes on PCA (origin the mean, ax = v_i).
    mu holds each point's whole posterior mean: a clicked point jumps there.
    """
    points: np.ndarray          # (N, 2)
    labels: np.ndarray          # (N,)
    mu: np.ndarray              # (N, D)
    origin: np.ndarray          # (D,)
    ax: np.ndarray              # (D,) unit
    ay: np.ndarray | None       # (D,) unit, orthogonal to ax; None for a 1-D latent
    titles: tuple[str, str]
    tag: str                    # names the points file (model, axes, splits, colouring)
    classes: list | None = None  # the legend's names for the labels (default: the model's classes)
    palette: list | None = None  # their colours (default: the categorical PALETTE)
    # a non-linear map (Map page): z at the nodes of a lattice over `box` replaces origin/ax/ay
    # for clicks and drags, and place(z) gives the marker's map position (None: not shown)
    lattice: np.ndarray | None = None   # (G, G, D)
    box: np.ndarray | None = None       # (2, 2)
    place: object = None


_EXPLORER = None


def _explorer_component():
    global _EXPLORER
    if _EXPLORER is None:
        js = (Path(__file__).parent / "ui" / "latent_explorer.js").read_text()
        _EXPLORER = st.components.v2.component("vae_latent_explorer", js=js, isolate_styles=False)
    return _EXPLORER


def _event(key: str, name: str):
    got = st.session_state.get(key)
    return got.get(name) if isinstance(got, dict) else None


def _on_move(key: str) -> None:
    """A z the browser's sliders or drag set. Ignored when it was made before the
    server's last change of z (its version is older): the server's z stands."""
    ev = _event(key, "move")
    if not isinstance(ev, dict) or ev.get("v") != st.session_state.get("z_version"):
        return
    z = ev.get("z")
    if not isinstance(z, list) or len(z) != len(st.session_state["z"]):
        return
    try:
        z = np.asarray(z, dtype=float)
    except (TypeError, ValueError):
        return
    if np.all(np.isfinite(z)):
        set_z(z, client=True)
        st.session_state["z_ack"] = [str(ev.get("cid")), int(ev.get("seq") or 0)]


def _on_pick(key: str, mu: np.ndarray) -> None:
    """A clicked point: z becomes that image's posterior mean (all of its dimensions)."""
    ev = _event(key, "pick")
    i = ev.get("i") if isinstance(ev, dict) else None
    if isinstance(i, int) and 0 <= i < len(mu):
        set_z(mu[i])


def latent_view(key: str, ckpt, sliders: list[dict], plane: Plane | None, caption: str = "") -> None:
    """The scatter, the decoded image, the sliders and the z readout as one browser
    component (ui/latent_explorer.js); call it inside an st.fragment, so a z sent by
    the browser reruns only this.

    sliders: [{"label", "dim": i} or {"label", "u": (D,), "scale"}, with "lo", "hi", "step"]:
    a slider's value is (z - origin)[dim], or (z - origin)·u / scale.
    """
    from vae_core.images import decode
    from vae_core.plots import PALETTE, square_ranges
    z = st.session_state["z"]
    d = len(z)
    points_url = ranges = None
    if plane is not None:
        points_url = _points_file(ckpt.hash, plane.tag, plane.points, plane.labels)
        ranges = square_ranges(plane.points)
    # the server's own picture of z: shown until the browser's decoder has loaded, and
    # always for models the browser cannot decode
    import base64
    image = "data:image/png;base64," + base64.b64encode(png_bytes(decode(ckpt.model, z))).decode()
    zero = np.zeros(d)
    data = {
        "model": ckpt.hash, "decoder_url": browser_decoder_url(ckpt),
        "points_url": points_url, "n_points": 0 if plane is None else len(plane.points),
        "classes": list(plane.classes if plane is not None and plane.classes else ckpt.class_names),
        "palette": plane.palette if plane is not None and plane.palette else PALETTE,
        "ranges": None if ranges is None else [list(map(float, r)) for r in ranges],
        "axis_titles": list(plane.titles) if plane else ["", ""],
        "origin": (plane.origin if plane else zero).astype(float).tolist(),
        "ax": (plane.ax if plane else zero).astype(float).tolist(),
        "ay": None if plane is None or plane.ay is None else plane.ay.astype(float).tolist(),
        "lattice_url": None if plane is None or plane.lattice is None
        else _lattice_file(ckpt.hash, plane.tag, plane.lattice, plane.box),
        "marker": None if plane is None or plane.place is None else plane.place(z),
        "sliders": sliders, "z": z, "v": st.session_state.get("z_version", 0),
        "ack": st.session_state.get("z_ack"), "zmax": z_limit(),
        "image": image, "image_z": z_text(z), "size": DISPLAY, "caption": caption,
    }
    mu = plane.mu if plane is not None else np.zeros((0, d))
    _explorer_component()(key=key, data=data, on_move_change=lambda: _on_move(key),
                          on_pick_change=lambda: _on_pick(key, mu))


def show_error(e: Exception) -> None:
    """Show a user-facing error without a traceback."""
    st.error(str(e), icon="⚠️")


@st.cache_resource(show_spinner=False, max_entries=16)
def get_cached_logvar(ckpt_hash: str, split: str = "test"):
    """The cached posterior log-variances (N, D) beside get_cached_latents' means (shared,
    read-only), or None: an autoencoder has none, or the split is not cached yet."""
    lat = load_cached_latents(ckpt_hash, split)
    return None if lat is None or lat.logvar is None else _shared(lat.logvar)[0]


# ---------------------------------------------------------------- discrete latents (fsq, vq-vae)

def codes_of(model, z) -> np.ndarray:
    """The code indices of one z: vq-vae's M slot codes, or fsq's one index into its grid."""
    import torch
    with torch.no_grad():
        return model.quantizer.codes(torch.as_tensor(np.asarray(z, np.float32).reshape(1, -1)))[0].numpy().ravel()


@st.cache_data(show_spinner=False, max_entries=16)
def code_counts(ckpt_hash: str, _model, _mu: np.ndarray) -> np.ndarray:
    """How often the test set uses each code (vq-vae: over every slot; fsq: grid points), (K,)."""
    from vae_core.quantizers import code_histogram
    return code_histogram(_model.quantizer, np.array(_mu, np.float32)).numpy()  # a copy: _mu is read-only


def code_usage_chart(counts: np.ndarray, current=()):
    """The codebook's usage histogram (codes by index, the current z's codes marked) and its caption."""
    import plotly.graph_objects as go
    from vae_core.quantizers import usage_and_perplexity
    k = len(counts)
    used = int((counts > 0).sum())
    _, perplexity = usage_and_perplexity(counts)
    fig = go.Figure(go.Bar(x=np.arange(k), y=counts, marker_line_width=0, name="test set",
                           hovertemplate="code %{x}: %{y} uses<extra></extra>"))
    for c in dict.fromkeys(int(c) for c in current):
        fig.add_vline(x=c, line_color="#ff4b4b", line_width=1)
    fig.update_layout(height=190, margin=dict(l=40, r=10, t=10, b=30), bargap=0, showlegend=False,
                      xaxis_title="code", yaxis_title="uses")
    caption = (f"{used:,} of {k:,} codes used by the test set ({used / k:.0%}); perplexity {perplexity:.1f} "
               f"(exp of the entropy of this histogram: the number of equally used codes it equals). "
               f"Red: the current z's code{'s' if len(current) > 1 else ''}.")
    return fig, caption

