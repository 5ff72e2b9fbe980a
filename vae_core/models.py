"""The four models: ConvVAE, ConvAE, LinearVAE, LinearAE.

One interface for all of them:
    encode(x)  -> (mu, logvar)     AEs return (z, None)
    decode(z)  -> logits           sigmoid only at display time
    forward(x) -> (logits, mu, logvar, z)   VAEs sample z = mu + sigma*eps
Images are float (B,1,28,28) in [0,1].

ConvVAE follows the reference recipe (the Keras VAE example, in PyTorch):
stride-2 convolutions 32 -> 64 channels with LeakyReLU(0.2), a hidden fc layer,
then mu and logvar; the decoder mirrors it with ConvTranspose layers. The
"dec+1" option adds one ConvTranspose(k3, s1) at the decoder head, which lets the
last layer mix neighbouring pixels after the upsampling and sharpens strokes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from vae_core import VaeError

MODEL_KINDS = ("conv-vae", "conv-ae", "linear-vae", "linear-ae")


@dataclass
class ModelConfig:
    kind: str = "conv-vae"
    latent_dim: int = 2
    extra_decoder_layer: bool = False  # "dec+1"
    batchnorm: bool = False            # BatchNorm after each encoder conv (BN-VAE)
    hidden: int = 256                  # width of the fc layer between convs and latent
    channels: tuple[int, int] = (32, 64)

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        self.validate()

    def validate(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise VaeError(f"Unknown model {self.kind!r}: choose one of {', '.join(MODEL_KINDS)}.")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise VaeError(f"Latent dim must be a whole number >= 1, got {self.latent_dim!r}.")
        if self.hidden < 1 or len(self.channels) != 2 or min(self.channels) < 1:
            raise VaeError("hidden and channels must be positive (channels: two numbers).")

    @property
    def variational(self) -> bool:
        return self.kind.endswith("-vae")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise VaeError(f"Model config has unknown keys {sorted(unknown)}; was it written by a newer version?")
        return cls(**d)


class ConvEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int):
        super().__init__()
        c1, c2 = cfg.channels
        norm = (lambda c: nn.BatchNorm2d(c)) if cfg.batchnorm else (lambda c: nn.Identity())
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), norm(c1), nn.LeakyReLU(0.2),   # 28 -> 14
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), norm(c2), nn.LeakyReLU(0.2),  # 14 -> 7
            nn.Flatten(),
            nn.Linear(c2 * 7 * 7, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, out_dim),
        )

    def forward(self, x):
        return self.net(x)


class ConvDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2 = cfg.channels
        self.c2 = c2
        self.fc = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, c2 * 7 * 7), nn.LeakyReLU(0.2),
        )
        layers = [nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),  # 7 -> 14
                  nn.LeakyReLU(0.2)]
        if cfg.extra_decoder_layer:
            # Upsample to c1/2 channels, not c1: at 28x28 this layer dominates the cost,
            # and half the width keeps dec+1 affordable on a CPU.
            head = max(c1 // 2, 1)
            layers += [nn.ConvTranspose2d(c1, head, 3, stride=2, padding=1, output_padding=1),  # 14 -> 28
                       nn.LeakyReLU(0.2),
                       nn.ConvTranspose2d(head, 1, 3, stride=1, padding=1)]  # dec+1: k3 s1 head
        else:
            layers += [nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, self.c2, 7, 7))


class MLPEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 2 * cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, out_dim),
        )

    def forward(self, x):
        return self.net(x)


class MLPDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, 2 * cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * cfg.hidden, 784),
        )

    def forward(self, z):
        return self.net(z).view(-1, 1, 28, 28)


class AutoEncoder(nn.Module):
    """Encoder + decoder; variational when the config's kind ends in -vae."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        out = 2 * cfg.latent_dim if cfg.variational else cfg.latent_dim
        conv = cfg.kind.startswith("conv")
        self.encoder = ConvEncoder(cfg, out) if conv else MLPEncoder(cfg, out)
        self.decoder = ConvDecoder(cfg) if conv else MLPDecoder(cfg)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def variational(self) -> bool:
        return self.config.variational

    def encode(self, x):
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        # A clamp keeps exp(logvar) finite early in training or at a too-high lr.
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu if logvar is None else mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar, z


# The four names of the AE-vs-VAE comparison; each is the same class with a fixed kind.
class ConvVAE(AutoEncoder):
    def __init__(self, latent_dim=2, **kw):
        super().__init__(ModelConfig(kind="conv-vae", latent_dim=latent_dim, **kw))


class ConvAE(AutoEncoder):
    def __init__(self, latent_dim=2, **kw):
        super().__init__(ModelConfig(kind="conv-ae", latent_dim=latent_dim, **kw))


class LinearVAE(AutoEncoder):
    def __init__(self, latent_dim=2, **kw):
        super().__init__(ModelConfig(kind="linear-vae", latent_dim=latent_dim, **kw))


class LinearAE(AutoEncoder):
    def __init__(self, latent_dim=2, **kw):
        super().__init__(ModelConfig(kind="linear-ae", latent_dim=latent_dim, **kw))


def build_model(cfg: ModelConfig) -> AutoEncoder:
    return AutoEncoder(cfg)

