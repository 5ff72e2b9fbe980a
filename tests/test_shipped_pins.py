"""The four shipped checkpoints behave bit for bit as before issue 13 (colour, larger sizes).

The digests were computed on main before the models learnt about shapes: sha256 of the
float32 bytes of decoder logits for fixed z, of the uint8 images decode() shows, and of
the encoder's (mu, logvar) for a fixed input. Any change to the layers, their order or
their arithmetic for a 1x28x28 model moves them.
"""
import hashlib

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vae_core.checkpoint import load_checkpoint
from vae_core.images import decode

# name -> (weights hash, logits sha256, decode() uint8 sha256, encode sha256)
PINNED = {
    "fashion-z2": ("f82ed60a46b09b03",
                   "cd86469956d86a3b613167c09edf8b9b6ff816a7a1eebec1be766c20297d8bd0",
                   "6b1f259943513cf5641a6a75ce9bfeb560a70330cf78b1cfd0c6347076a94e01",
                   "3eda25b706f5b7e6483e505d3051ea7f1e3349dd8d4507880744e284910db5d4"),
    "mnist-bin-z50": ("49d63cf506b77506",
                      "19a863da4b2068551a6aebea542d94dccf3405eb2058d569fde3cbde927f9693",
                      "39eade4c2d776bfe4a76c432f5b1a7d0108f9836b9eb5abb3aefce7c1a5ec63c",
                      "3f1b43ae4a3a2797ba0aaec43bf611b4b078160d88002147227424ba4df53ef8"),
    "mnist-z16": ("978972d8d3e8bd47",
                  "13c5fa817a7d9f4114614ea031ba48462f4254a0374ffa9beafd4ce6de432cf0",
                  "5dea475baddd7391c9138756742eaa42e9ddb22a7922340f79212ece9accbc54",
                  "88e46eaa70f3d05fcb668f7e7965b65b3f47c6f205c6d2827b17bb98e61a3317"),
    "mnist-z2": ("e38c9a24955e1fc6",
                 "876ffcadd56925d3f31c0245745c0a9dfdad64faec45c50518a6cfc6dfd90227",
                 "bb25382f98174eb567fdcffa77204ceb0ca2dd92c4a33976bc867a8b7cc42811",
                 "1d1ebde8819fd2d56c390692848806b99303db53d561283a17c16b6d05e200cb"),
}


def _sha(t) -> str:
    a = t.float().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
    return hashlib.sha256(a.tobytes()).hexdigest()


@pytest.fixture(autouse=True)
def two_threads():
    """The digests were taken with torch's two threads on a 2-core machine; a parallel run's
    worker has one (tests/conftest.py), and the thread count changes how sums are split."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_checkpoint_decodes_and_encodes_bit_identically(name):
    weights, logits_sha, images_sha, encode_sha = PINNED[name]
    ck = load_checkpoint(REPO / "checkpoints" / name)
    assert ck.hash == weights  # the shipped weights themselves did not change
    d = ck.model.latent_dim
    z = torch.from_numpy(np.random.default_rng(13).standard_normal((6, d)).astype(np.float32))
    with torch.no_grad():
        logits = ck.model.decode(z)
    assert tuple(logits.shape) == (6, 1, 28, 28)
    assert _sha(logits) == logits_sha
    shown = decode(ck.model, z.numpy())
    assert shown.shape == (6, 28, 28) and shown.dtype == np.uint8  # display layout unchanged for grey
    assert _sha(shown) == images_sha
    x = torch.from_numpy(np.random.default_rng(7).random((4, 1, 28, 28)).astype(np.float32))
    with torch.no_grad():
        mu, logvar = ck.model.encode(x)
    assert _sha(torch.cat([mu, logvar], 1)) == encode_sha
