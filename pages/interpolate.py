"""Interpolate: two images -> their z (posterior means) -> lerp / slerp path -> frames and a GIF.

With the dataset here the page opens on two test-set images, so a path shows at once;
uploads are one click away. Each stage is cached by its content (the image bytes or
array, the checkpoint's hash, the path's settings), so moving the scrubber or changing
the GIF's options redoes neither the preprocessing, the encoding nor the decoding.
"""
import numpy as np
import streamlit as st
import torch

from ui_common import current_checkpoint, encoded_image, test_images_for, prepared_upload, show_error, show_image
from vae_core import VaeError
from vae_core.gif import gif_bytes, gif_info
from vae_core.images import decode, tile
from vae_core.interpolate import path
from vae_core.preprocess import IMAGE_TYPES


@st.cache_data(show_spinner=False, max_entries=32)
def path_frames(ckpt_hash: str, _model, z_a: np.ndarray, z_b: np.ndarray, steps: int, method: str) -> np.ndarray:
    return decode(_model, path(z_a, z_b, steps, method))


@st.cache_data(show_spinner="Making the GIF…", max_entries=16)
def make_gif(frames: np.ndarray, size: int, fps: int, resample: str, pingpong: bool, labels: bool):
    """(GIF bytes, frames in it): the preview needs the bytes, the download button reuses them."""
    gif = gif_bytes(frames, size=size, fps=fps, resample=resample, pingpong=pingpong, labels=labels)
    return gif, gif_info(gif)["frames"]


ckpt = current_checkpoint()
model = ckpt.model
st.title("Interpolate")
test_images = test_images_for(ckpt)


def pick_image(side: str, default_index: int):
    """One endpoint: a test-set image (the default, when the dataset is here) or an upload.
    Returns a uint8 image in the model's display layout ((H, W) or (H, W, 3)) or None."""
    sources = (["Test-set image"] if test_images is not None else []) + ["Upload"]
    source = (st.radio(f"Image {side}", sources, horizontal=True, key=f"src_{side}") if len(sources) > 1
              else "Upload")
    if source == "Upload":
        up = st.file_uploader(f"Image {side}: PNG, JPEG, GIF, BMP, WebP or TIFF", type=IMAGE_TYPES,
                              key=f"upload_{side}")
        invert = st.radio("Invert", ["auto", "yes", "no"], horizontal=True, key=f"invert_{side}",
                          help="auto inverts when the background is bright (dark ink photographed on paper)")
        if up is None:
            return None
        try:
            prep = prepared_upload(up, invert, model.image_shape)
        except VaeError as e:
            show_error(e)
            return None
        for note in prep.notes:
            st.caption(note)
        return prep.image
    i = st.number_input(f"Index in the {ckpt.dataset} test set", 0, len(test_images) - 1, default_index,
                        key=f"index_{side}")
    return test_images[int(i)]


cols = st.columns(2, gap="large")
ends = []
for col, side, default in zip(cols, ["A", "B"], [3, 2]):
    with col:
        img = pick_image(side, default)
        if img is not None:
            mu, recon = encoded_image(ckpt.hash, model, img)
            a, b = st.columns(2)
            show_image(img, 168, "input (preprocessed)", a)
            show_image(recon, 168, "reconstruction", b)
            ends.append(mu)

if len(ends) < 2:
    st.info("Choose two images to interpolate between" +
            (" (uploads, or test-set images by index)." if test_images is not None else "."))
    st.stop()

st.divider()
c1, c2 = st.columns([1, 2])
method = c1.radio("Method", ["lerp", "slerp"], horizontal=True, key="interp_method",
                  help="slerp follows the great circle between the two z and interpolates their norms, "
                       "so the path does not cut through the low-density centre of the prior")
steps = c2.slider("Steps (frames, both ends included)", 2, 120, 12, key="interp_steps")
frames = path_frames(ckpt.hash, model, ends[0], ends[1], steps, method)
if model.discrete:
    with torch.no_grad():
        codes = model.quantizer.codes(torch.as_tensor(path(ends[0], ends[1], steps, method), dtype=torch.float32))
    changes = int((codes.reshape(steps, -1)[1:] != codes.reshape(steps, -1)[:-1]).any(1).sum())
    where = "the encoder's output before quantisation (z_e)" if model.discrete == "vq" else "FSQ's [-1, 1] cube"
    st.caption(f"{'VQ-VAE' if model.discrete == 'vq' else 'FSQ'}: the path runs through {where}; each frame shows "
               f"the decode of its nearest code{'s' if model.discrete == 'vq' else ''}, so the picture changes in "
               f"steps: {changes} change{'s' if changes != 1 else ''} of code along these {steps} frames.")

c1, c2 = st.columns([1, 2], gap="large")
with c1:
    k = st.slider("Scrub along the path", 0, steps - 1, 0, key="interp_scrub")
    show_image(frames[k], 280, f"frame {k + 1}/{steps}, t = {k / (steps - 1):.2f}")
with c2:
    # as many frames a row as fit the column's 540 px at scale 1: 16 of 28 px, 8 of 64 px
    per_row = min(steps, 16, max(1, 540 // (frames.shape[2] + 2)))
    rows = -(-steps // per_row)
    padded = np.concatenate([frames, np.zeros((rows * per_row - steps, *frames.shape[1:]), np.uint8)])
    strip = tile(padded.reshape(rows, per_row, *frames.shape[1:]), pad=2, pad_value=60)
    show_image(strip, strip.shape[1] * max(1, 540 // strip.shape[1]), "every frame, left to right, top to bottom")

st.subheader("GIF")
c1, c2, c3, c4, c5 = st.columns(5)
size = c1.select_slider("Size (px)", [64, 128, 256, 384, 512], 256, key="gif_size")
resample = c2.radio("Upscaling", ["nearest", "bicubic"], key="gif_resample")
fps = c3.slider("Frames per second", 1, 30, 10, key="gif_fps")
pingpong = c4.checkbox("Ping-pong (there and back)", key="gif_pingpong")
labels = c5.checkbox("Step labels", key="gif_labels")
try:
    gif, n_frames = make_gif(frames, size, fps, resample, pingpong, labels)
except VaeError as e:
    show_error(e)
    st.stop()
# "ignore": a download needs no rerun of the page
st.download_button(f"Download GIF ({n_frames} frames, {size}×{size}, {len(gif) / 1024:.0f} kB)", gif,
                   file_name=f"interpolation-{method}-{steps}.gif", mime="image/gif", key="gif_download",
                   on_click="ignore")
st.image(gif, caption="preview (loops forever)", width=size, output_format="GIF")
