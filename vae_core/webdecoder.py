"""The decoder as plain data, so the browser can run it: the Explore page's fast path.

A slider step that waits for the server costs a WebSocket round trip, a script
rerun and a page update (~100 ms here even for a bare Streamlit app). The
decoders are small (a few million multiply-adds), so the browser decodes the
slider's z itself in a few milliseconds; the server only learns the z (for the
URL and the rest of the page). This module flattens a decoder into a list of
layers with float32 weights, packed by decoder_blob into one binary file that the
browser fetches after the page has drawn; ui/latent_explorer.js runs that list.

Only what the decoders are made of is supported: Linear, LeakyReLU,
ConvTranspose2d and the reshape between the fc part and the convolutions, and the
channel-gain head (models.py): a "gain" layer multiplies each output channel by
1 + (W z + b)[c], z being the decoder's input, and a last "pixels" entry says the picture
is the output clipped to [0, 1] rather than its sigmoid.
Anything else raises VaeError and the explorer shows the server's pictures instead.

Shapes: models of any size, depth and channel count are exported (the browser's loop
follows the reshape and each layer's sizes, and draws 3 channels as RGB; a Gaussian
decoder's picture is sigmoid(logits) too).
"""
from __future__ import annotations

import base64
import json
import struct

import numpy as np
import torch
from torch import nn

from vae_core import VaeError
from vae_core.models import ConvDecoder, MLPDecoder


def _f32(t: torch.Tensor) -> str:
    return base64.b64encode(t.detach().float().cpu().contiguous().numpy().astype("<f4").tobytes()).decode()


def _layer(m: nn.Module) -> dict:
    if isinstance(m, nn.Linear):
        return {"op": "linear", "in": m.in_features, "out": m.out_features, "w": _f32(m.weight), "b": _f32(m.bias)}
    if isinstance(m, nn.LeakyReLU):
        return {"op": "lrelu", "slope": float(m.negative_slope)}
    if isinstance(m, nn.ConvTranspose2d):
        if m.groups != 1 or m.dilation != (1, 1) or m.kernel_size[0] != m.kernel_size[1] \
                or m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1] \
                or m.output_padding[0] != m.output_padding[1] or m.bias is None:
            raise VaeError("This decoder has a transposed convolution the browser decoder does not handle.")
        return {"op": "convT", "cin": m.in_channels, "cout": m.out_channels, "k": m.kernel_size[0],
                "stride": m.stride[0], "pad": m.padding[0], "outpad": m.output_padding[0],
                "w": _f32(m.weight), "b": _f32(m.bias)}
    raise VaeError(f"The browser decoder does not handle {type(m).__name__} layers.")


def decoder_layers(model) -> list[dict]:
    """The decoder of `model` as a list of layers: z (D,) -> logits (C, H, W).

    Weights are little-endian float32 in base64, in PyTorch's own layout:
    Linear (out, in), ConvTranspose2d (cin, cout, k, k). A "reshape" layer gives
    the (C, H, W) shape the following convolutions read.
    """
    if getattr(model, "discrete", None):
        # decode(z) snaps z to FSQ's grid or VQ's codebook first, which this loop does not do
        raise VaeError("The browser decoder does not quantise z (fsq, vq-vae); the server decodes these models.")
    dec = model.decoder
    if isinstance(dec, ConvDecoder):
        layers = [_layer(m) for m in dec.fc]
        layers.append({"op": "reshape", "shape": [dec.c2, dec.side, dec.side]})
        layers += [_layer(m) for m in dec.deconv]
    elif isinstance(dec, MLPDecoder):
        layers = [_layer(m) for m in dec.net]
        layers.append({"op": "reshape", "shape": list(dec.shape)})
    else:
        raise VaeError(f"The browser decoder does not handle {type(dec).__name__}.")
    if model.config.decoder_mean == "channel-gain":
        g = model.gain
        layers.append({"op": "gain", "in": g.in_features, "out": g.out_features, "w": _f32(g.weight), "b": _f32(g.bias)})
        layers.append({"op": "pixels", "mean": "clip"})
    return layers


def run_layers(layers: list[dict], z) -> np.ndarray:
    """A NumPy twin of the browser's loop (same layout, same order): the output (C, H, W).

    It pins down the layer format in unit tests; the browser test checks the
    JavaScript against PyTorch itself.
    """
    x = z0 = np.asarray(z, dtype=np.float64).ravel()
    for L in layers:
        op = L["op"]
        w = np.frombuffer(base64.b64decode(L["w"]), "<f4").astype(np.float64) if "w" in L else None
        b = np.frombuffer(base64.b64decode(L["b"]), "<f4").astype(np.float64) if "b" in L else None
        if op == "linear":
            x = w.reshape(L["out"], L["in"]) @ x.ravel() + b
        elif op == "lrelu":
            x = np.where(x >= 0, x, x * L["slope"])
        elif op == "reshape":
            x = x.reshape(L["shape"])
        elif op == "convT":
            cin, cout, k, s, p, op_ = L["cin"], L["cout"], L["k"], L["stride"], L["pad"], L["outpad"]
            _, h, wd = x.shape
            ho, wo = (h - 1) * s - 2 * p + k + op_, (wd - 1) * s - 2 * p + k + op_
            wk = w.reshape(cin, cout, k, k)
            full = np.zeros((cout, (h - 1) * s + k + op_, (wd - 1) * s + k + op_))
            for ky in range(k):
                for kx in range(k):
                    contrib = np.einsum("chw,co->ohw", x, wk[:, :, ky, kx])
                    full[:, ky:ky + (h - 1) * s + 1:s, kx:kx + (wd - 1) * s + 1:s] += contrib
            x = full[:, p:p + ho, p:p + wo] + b[:, None, None]
        elif op == "gain":
            x = x * (1 + w.reshape(L["out"], L["in"]) @ z0 + b)[:, None, None]
        elif op == "pixels":
            pass  # how the browser turns the output into pixels; the output itself is unchanged
        else:
            raise VaeError(f"Unknown layer {op!r}.")
    return x


def decoder_blob(model) -> bytes:
    """The layers as one binary file the browser fetches: a 4-byte little-endian length,
    that many bytes of JSON (the layers, with "w"/"b" replaced by float32 offsets and
    lengths into the rest), then the float32 weights."""
    layers, chunks, offset = [], [], 0
    for L in decoder_layers(model):
        L = dict(L)
        for k in ("w", "b"):
            if k in L:
                raw = base64.b64decode(L[k])
                L[k] = [offset, len(raw) // 4]
                chunks.append(raw)
                offset += len(raw) // 4
        layers.append(L)
    head = json.dumps(layers).encode()
    head += b" " * (-(4 + len(head)) % 4)  # the float32 data starts 4-byte aligned
    return struct.pack("<I", len(head)) + head + b"".join(chunks)


def read_blob(blob: bytes) -> list[dict]:
    """decoder_blob's inverse, in decoder_layers' format (for tests and tools)."""
    (n,) = struct.unpack("<I", blob[:4])
    layers = json.loads(blob[4:4 + n])
    data = np.frombuffer(blob[4 + n:], "<f4")
    for L in layers:
        for k in ("w", "b"):
            if k in L:
                off, cnt = L[k]
                L[k] = base64.b64encode(data[off:off + cnt].tobytes()).decode()
    return layers
