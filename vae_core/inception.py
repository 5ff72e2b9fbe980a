"""Inception-v3 features for FID, from a weights file the user has (never downloaded).

    python -m vae_core.evaluate --checkpoint checkpoints/mnist-z16 --fid-weights ~/pt_inception-2015-12-05-6726825d.pth

FID as the literature reports it (Heusel et al. 2017; the RAE paper's Table 1) is the Fréchet
distance between the 2,048 pool3 features of TensorFlow's 2015 Inception-v3 graph. The usual
PyTorch port of that graph is pytorch-fid's pt_inception-2015-12-05-6726825d.pth: a plain
state dict for torchvision's Inception3 (1,008 classes, no auxiliary head) whose blocks differ
from torchvision's in two ways, reproduced here:
  * TensorFlow's 3x3 average pools leave the zero padding out of the mean (count_include_pad=False),
  * the last block (Mixed_7c) pools its side branch with a max, not an average.
Images are resized to 299x299 bilinearly, grey ones repeated to three channels, and scaled
from [0, 1] to [-1, 1], as pytorch-fid does.

The file is opened with torch.load(weights_only=True): tensors only, nothing unpickled that
could run code. The project ships no Inception weights (they are not ours to ship and 95 MB);
without a file, quality.py reports the classifier distance fd_classifier, named as such.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

from vae_core import VaeError

STANDARD_SHA256_PREFIX = "6726825d"  # pytorch-fid names its file by the first 8 hex digits of its sha256
FEATURES = 2048
SIZE = 299


def _tf_avg(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


# Each block takes its side branch's pool as an argument: the FID graph's by default, and
# torchvision's own in the test that checks these forwards against torchvision's blocks.
class _BlockA(InceptionA):
    def __init__(self, in_channels: int, pool_features: int, pool=_tf_avg):
        super().__init__(in_channels, pool_features)
        self.pool = pool

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(self.pool(x))], 1)


class _BlockC(InceptionC):
    def __init__(self, in_channels: int, channels_7x7: int, pool=_tf_avg):
        super().__init__(in_channels, channels_7x7)
        self.pool = pool

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(self.pool(x))], 1)


class _BlockE(InceptionE):
    def __init__(self, in_channels: int, pool=_tf_avg):
        super().__init__(in_channels)
        self.pool = pool

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3), self.branch_pool(self.pool(x))], 1)


def fid_inception() -> Inception3:
    """The FID graph's architecture with untrained weights (load_fid_inception fills them)."""
    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = _BlockA(192, 32), _BlockA(256, 64), _BlockA(288, 64)
    net.Mixed_6b, net.Mixed_6c = _BlockC(768, 128), _BlockC(768, 160)
    net.Mixed_6d, net.Mixed_6e = _BlockC(768, 160), _BlockC(768, 192)
    net.Mixed_7b, net.Mixed_7c = _BlockE(1280), _BlockE(2048, pool=_max)
    return net.eval()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_fid_inception(path) -> tuple[Inception3, dict]:
    """(the network in eval mode, a description: file, sha256, standard) from a state-dict
    file; VaeError naming the file when it is missing, not tensors only, or another network's."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VaeError(f"No Inception weights file at {path}. FID needs pytorch-fid's "
                       "pt_inception-2015-12-05-6726825d.pth (or the same weights) in a local folder; "
                       "nothing is downloaded.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unpickling refusal, a truncated zip, not a torch file at all
        raise VaeError(f"{path} is not a tensors-only weights file torch.load(weights_only=True) can read "
                       f"({type(e).__name__}: {str(e).splitlines()[0][:200]}).") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VaeError(f"{path} holds no state dict (a mapping of names to tensors).")
    net = fid_inception()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise VaeError(f"{path} does not hold the FID Inception-v3 weights: "
                       f"{str(e).splitlines()[1].strip()[:300] if len(str(e).splitlines()) > 1 else e}") from e
    digest = file_sha256(path)
    # channels_last: oneDNN's convolutions run ~1.5x faster on CPU in that layout (25 images,
    # one thread: 4.2 s against 6.3 s), and the features agree to float rounding.
    net = net.to(memory_format=torch.channels_last)
    return net.eval(), {"file": path.name, "sha256": digest, "standard": digest.startswith(STANDARD_SHA256_PREFIX)}


@torch.no_grad()
def inception_features(net: Inception3, images, batch: int = 25) -> torch.Tensor:
    """(N, 2048) pool3 features of uint8 or [0, 1] float images (N, C, H, W), C = 1 or 3."""
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = 2 * F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False) - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
            x = getattr(net, name)(x)
        out.append(x.flatten(1))
    return torch.cat(out) if out else torch.zeros(0, FEATURES)
