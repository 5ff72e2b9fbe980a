"""The four models: ConvVAE, ConvAE, LinearVAE, LinearAE.

One interface for all of them:
    encode(x)  -> (mu, logvar)     AEs return (z, None)
    decode(z)  -> the decoder's output: logits (pixels(out) is the picture)
    forward(x) -> (output, mu, logvar, z)   VAEs sample z = mu + sigma*eps
Images are float (B, C, H, W) in [0,1], C in {1, 3}, H = W = the config's image_size
(1x28x28 unless the config says otherwise: every checkpoint written before shapes
existed is a 1x28x28 model).

ConvVAE follows the reference recipe (the Keras VAE example, in PyTorch):
stride-2 convolutions 32 -> 64 channels with LeakyReLU(0.2), a hidden fc layer,
then mu and logvar; the decoder mirrors it with ConvTranspose layers. The
"dec+1" option adds one ConvTranspose(k3, s1) at the decoder head, which lets the
last layer mix neighbouring pixels after the upsampling and sharpens strokes.

Depth follows the size: stride-2 convolutions halve the image until it is 4..7
pixels across (28 -> 14 -> 7: two layers, exactly the reference; 32 -> 4: three;
64 -> 4: four). Widths are channels[0], channels[1], then doubling (32, 64, 128,
256), so the deeper stacks keep roughly the same activations per layer.

Likelihood: "bernoulli" decodes logits of pixel probabilities (BCE on [0, 1]
targets); "gaussian" decodes logits whose sigmoid is the mean of N(mean, sigma^2)
per pixel, with one log sigma shared by all pixels, set to its analytic optimum
(the "optimal sigma-VAE" of Rybkin et al. 2021; see losses.py). Either way
sigmoid(decode(z)) is the picture, unless the decoder mean below says otherwise:
model.pixels(decode(z)) is the picture in every case.

Decoder mean (decoder_mean, Gaussian decoders only): "channel-gain" multiplies the
decoder's output by (1 + W z + b), one gain per colour channel computed from z, and takes
the product as the mean itself, no sigmoid (clipped to [0, 1] only for display). Why: a
sprite's hue is a per-channel gain times a shape mask. Through a sigmoid decoder that
product is a saddle: the decoder only builds it once z carries the hue, and z only carries
it once the decoder uses it, so color-sprites models kept brightness and lost hue (hue
correlation 0.03 after 1.44M images). With the gain and a linear mean the same network
learns hue in 60,000 images (0.98; benchmarks/colour_fidelity.py).

Family (families.py): the objective a conv-vae was trained with. It leaves the network
alone, with three exceptions: delta-vae caps each posterior variance (see encode), so its
model must know delta to encode the way it was trained; fsq and vq-vae are conv-aes with
a discrete bottleneck (quantizers.py) that encode and decode pass z through. A config
without a family is "vae", today's objective, and writes no family key, so older folders
read and write unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from vae_core import VaeError
from vae_core.families import FAMILIES, MAX_DELTA, delta_logvar_ceiling
from vae_core.quantizers import MAX_CODEBOOK, build_quantizer, parse_levels

MODEL_KINDS = ("conv-vae", "conv-ae", "linear-vae", "linear-ae")
LIKELIHOODS = ("bernoulli", "gaussian")
DECODER_MEANS = ("sigmoid", "channel-gain")
IMAGE_CHANNELS = (1, 3)
MAX_IMAGE_SIZE = 1024  # a 1024x1024 colour batch of 128 is 1.6 GB of floats: far past useful here
MIN_LOG_SIGMA = -6.0   # sigma >= 0.0025 (under a grey level): keeps the Gaussian NLL finite on flat images


def conv_depth(image_size: int) -> int:
    """How many stride-2 convolutions take image_size down to 4..7 pixels, or VaeError.

    Each halving must be exact (a ConvTranspose mirror of an odd size would not come
    back to the same size), so 28 -> 2, 32 -> 3, 64 -> 4, 48 -> 3; 30 or 100 are refused.
    """
    size, depth = image_size, 0
    while size > 7:
        if size % 2:
            break
        size //= 2
        depth += 1
    if depth == 0 or not 4 <= size <= 7:
        raise VaeError(f"A convolutional model needs an image size that halves exactly down to 4..7 pixels "
                       f"(e.g. 28, 32, 48, 64, 128); {image_size} does not. Choose another --image-size "
                       f"or a linear model.")
    return depth


@dataclass
class ModelConfig:
    kind: str = "conv-vae"
    latent_dim: int = 2
    extra_decoder_layer: bool = False  # "dec+1"
    batchnorm: bool = False            # BatchNorm after each encoder conv (BN-VAE)
    hidden: int = 256                  # width of the fc layer between convs and latent
    channels: tuple[int, int] = (32, 64)
    # The image shape (C, size, size). Configs written before these fields existed
    # describe 1x28x28 Bernoulli models, which is what the defaults say.
    image_channels: int = 1
    image_size: int = 28
    likelihood: str = "bernoulli"
    # How the decoder's output becomes pixel means (see the module docstring); written to
    # config.json only when not "sigmoid", so every earlier folder reads unchanged.
    decoder_mean: str = "sigmoid"
    # The training objective (a key of families.FAMILIES) and delta-vae's committed rate in
    # nats per dimension. Written to config.json only when not the defaults.
    family: str = "vae"
    delta: float | None = None
    # The discrete bottlenecks (quantizers.py): fsq's levels per latent channel, vq-vae's
    # codebook size K and code length e (z is latent_dim / e slots of e numbers).
    levels: tuple[int, ...] | None = None
    codebook_size: int | None = None
    code_dim: int | None = None

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if self.levels is not None and isinstance(self.levels, (list, tuple)):
            self.levels = tuple(self.levels)
        self.validate()

    def validate(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise VaeError(f"Unknown model {self.kind!r}: choose one of {', '.join(MODEL_KINDS)}.")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise VaeError(f"Latent dim must be a whole number >= 1, got {self.latent_dim!r}.")
        if self.hidden < 1 or len(self.channels) != 2 or min(self.channels) < 1:
            raise VaeError("hidden and channels must be positive (channels: two numbers).")
        if self.image_channels not in IMAGE_CHANNELS or isinstance(self.image_channels, bool):
            raise VaeError(f"Images must have 1 (grey) or 3 (colour) channels, got {self.image_channels!r}.")
        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool) \
                or not 4 <= self.image_size <= MAX_IMAGE_SIZE:
            raise VaeError(f"Image size must be a whole number from 4 to {MAX_IMAGE_SIZE}, got {self.image_size!r}.")
        if self.likelihood not in LIKELIHOODS:
            raise VaeError(f"Unknown likelihood {self.likelihood!r}: choose one of {', '.join(LIKELIHOODS)}.")
        if self.decoder_mean not in DECODER_MEANS:
            raise VaeError(f"Unknown decoder mean {self.decoder_mean!r}: choose one of {', '.join(DECODER_MEANS)}.")
        if self.decoder_mean == "channel-gain" and self.likelihood != "gaussian":
            raise VaeError("The channel-gain decoder mean needs the Gaussian likelihood (--likelihood gaussian): "
                           "a Bernoulli decoder's output is logits.")
        if self.kind.startswith("conv"):
            conv_depth(self.image_size)
        if not isinstance(self.family, str) or self.family not in FAMILIES:
            raise VaeError(f"Unknown model family {self.family!r}: choose one of {', '.join(FAMILIES)}.")
        if self.family != "vae" and self.kind != FAMILIES[self.family].kind:
            raise VaeError(f"The {self.family} family trains a {FAMILIES[self.family].kind}, not a {self.kind}.")
        if (self.delta is not None) != (self.family == "delta-vae"):
            raise VaeError("delta (the committed rate) belongs to the delta-vae family and it needs one.")
        if self.delta is not None:
            if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) \
                    or not 0 < self.delta <= MAX_DELTA:
                raise VaeError(f"delta must be a number of nats in (0, {MAX_DELTA:g}], got {self.delta!r}.")
        if (self.levels is not None) != (self.family == "fsq"):
            raise VaeError("levels belong to the fsq family and it needs them.")
        if self.levels is not None:
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in self.levels):
                raise VaeError(f"FSQ levels must be whole numbers, got {self.levels!r}.")
            parse_levels(",".join(map(str, self.levels)))
            if len(self.levels) != self.latent_dim:
                raise VaeError(f"fsq has one latent channel per level count: levels "
                               f"{','.join(map(str, self.levels))} make {len(self.levels)} channels, not "
                               f"--latent-dim {self.latent_dim}. Set --latent-dim {len(self.levels)}, or give "
                               f"one level count for every channel (--fsq-levels 5).")
        vq = (self.codebook_size, self.code_dim)
        if (vq != (None, None)) != (self.family == "vq-vae"):
            raise VaeError("codebook_size and code_dim belong to the vq-vae family and it needs both.")
        if self.family == "vq-vae":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in vq) \
                    or not 2 <= self.codebook_size <= MAX_CODEBOOK or self.code_dim < 1:
                raise VaeError(f"vq-vae needs a codebook of 2 to {MAX_CODEBOOK} codes and a code length >= 1 "
                               f"(got {self.codebook_size!r} and {self.code_dim!r}).")
            if self.latent_dim % self.code_dim:
                raise VaeError(f"vq-vae splits z into slots of --code-dim {self.code_dim} numbers: --latent-dim "
                               f"{self.latent_dim} must be a multiple of it (e.g. {self.code_dim * 4}).")

    @property
    def variational(self) -> bool:
        return self.kind.endswith("-vae")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_channels, self.image_size, self.image_size)

    @property
    def widths(self) -> tuple[int, ...]:
        """Output channels of each encoder convolution: channels[0], channels[1], then doubling."""
        c1, c2 = self.channels
        depth = conv_depth(self.image_size)
        return tuple([c1, c2] + [c2 * 2 ** i for i in range(1, depth - 1)])[:depth]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        if self.family == "vae":  # today's objective: the config reads exactly as before families
            del d["family"]
        if self.decoder_mean == "sigmoid":
            del d["decoder_mean"]
        for k in ("delta", "levels", "codebook_size", "code_dim"):
            if d[k] is None:
                del d[k]
        if self.levels is not None:
            d["levels"] = list(self.levels)
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
        widths = cfg.widths
        norm = (lambda c: nn.BatchNorm2d(c)) if cfg.batchnorm else (lambda c: nn.Identity())
        layers, cin = [], cfg.image_channels
        for w in widths:  # each halves the size: 28 -> 14 -> 7, 64 -> 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1), norm(w), nn.LeakyReLU(0.2)]
            cin = w
        side = cfg.image_size >> len(widths)
        self.net = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(cin * side * side, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, out_dim),
        )

    def forward(self, x):
        return self.net(x)


class ConvDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths = cfg.widths
        self.c2 = widths[-1]                               # channels of the smallest feature map
        self.side = cfg.image_size >> len(widths)          # its size: 4..7
        self.fc = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, self.c2 * self.side * self.side), nn.LeakyReLU(0.2),
        )
        layers = []
        for cin, cout in zip(widths[:0:-1], widths[-2::-1]):  # mirror of the encoder: 7 -> 14, ...
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                       nn.LeakyReLU(0.2)]
        c1, out = widths[0], cfg.image_channels
        if cfg.extra_decoder_layer:
            # Upsample to c1/2 channels, not c1: at full size this layer dominates the cost,
            # and half the width keeps dec+1 affordable on a CPU.
            head = max(c1 // 2, 1)
            layers += [nn.ConvTranspose2d(c1, head, 3, stride=2, padding=1, output_padding=1),  # -> full size
                       nn.LeakyReLU(0.2),
                       nn.ConvTranspose2d(head, out, 3, stride=1, padding=1)]  # dec+1: k3 s1 head
        else:
            layers += [nn.ConvTranspose2d(c1, out, 3, stride=2, padding=1, output_padding=1)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, self.c2, self.side, self.side))


class MLPEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int):
        super().__init__()
        c, h, w = cfg.image_shape
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, 2 * cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, out_dim),
        )

    def forward(self, x):
        return self.net(x)


class MLPDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = cfg.image_shape
        c, h, w = self.shape
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, 2 * cfg.hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * cfg.hidden, c * h * w),
        )

    def forward(self, z):
        return self.net(z).view(-1, *self.shape)


class AutoEncoder(nn.Module):
    """Encoder + decoder; variational when the config's kind ends in -vae."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        out = 2 * cfg.latent_dim if cfg.variational else cfg.latent_dim
        conv = cfg.kind.startswith("conv")
        self.encoder = ConvEncoder(cfg, out) if conv else MLPEncoder(cfg, out)
        self.decoder = ConvDecoder(cfg) if conv else MLPDecoder(cfg)
        if cfg.likelihood == "gaussian":
            # One log sigma for every pixel (sigma-VAE). Training sets it from the data: the
            # loss of each batch uses that batch's optimal sigma (the RMS error), and after
            # each epoch this buffer takes the optimum over the epoch, which evaluation uses.
            # A buffer, not a Parameter: it is saved with the weights but no optimiser moves
            # it. Bernoulli models have no such entry: their state dicts are what they were.
            self.register_buffer("log_sigma", torch.zeros(()))
        # delta-vae: the ceiling on log sigma^2 that keeps every dimension's KL >= delta (a float,
        # not a buffer: it follows from the config, and the state dict stays that of a conv-vae)
        self.logvar_ceiling = delta_logvar_ceiling(cfg.delta) if cfg.delta is not None else None
        # fsq / vq-vae: the discrete bottleneck between encoder and decoder (quantizers.py). The
        # attribute exists only for them, so other models' state dicts are what they were.
        if (quantizer := build_quantizer(cfg)) is not None:
            self.quantizer = quantizer
        if cfg.decoder_mean == "channel-gain":  # the gain per colour channel, from z
            self.gain = nn.Linear(cfg.latent_dim, cfg.image_channels)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def variational(self) -> bool:
        return self.config.variational

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def likelihood(self) -> str:
        return self.config.likelihood

    def decoder_log_sigma(self) -> torch.Tensor | None:
        """The Gaussian decoder's log sigma, floored softly at MIN_LOG_SIGMA; None for Bernoulli."""
        if self.config.likelihood != "gaussian":
            return None
        return self.log_sigma.clamp(min=MIN_LOG_SIGMA)

    @property
    def discrete(self) -> str | None:
        """"fsq" or "vq" for a model with a discrete bottleneck, else None."""
        return None if self.config.family not in ("fsq", "vq-vae") else self.config.family.replace("-vae", "")

    def encode(self, x):
        h = self.encoder(x)
        if self.discrete == "fsq":
            return self.quantizer(h), None  # on the grid already
        if not self.variational:
            return h, None                  # (vq-vae: z_e, before the codebook)
        mu, logvar = h.chunk(2, dim=1)
        if self.logvar_ceiling is not None:
            # delta-VAE (Razavi et al. 2019): a smooth cap, c - softplus(c - raw): the identity well
            # below c, never above it. In float32, because bf16 rounds log sigma^2 by more than
            # the ceiling's margin.
            c = self.logvar_ceiling
            logvar = c - nn.functional.softplus(c - logvar.float())
        # A clamp keeps exp(logvar) finite early in training or at a too-high lr.
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        if self.discrete:  # any z decodes as its nearest grid point or codes
            z = self.quantizer.snap(z)
        return self._head(self.decoder(z), z)

    def _head(self, out, z):
        if self.config.decoder_mean != "channel-gain":
            return out
        return out * (1 + self.gain(z)).view(-1, out.shape[1], 1, 1)

    def pixels(self, out):
        """The picture of a decoder output: pixel means in [0, 1]."""
        if self.config.decoder_mean == "channel-gain":
            return out.clamp(0, 1)
        return torch.sigmoid(out)

    def forward(self, x):
        mu, logvar = self.encode(x)
        if self.discrete == "vq":
            z = self.quantizer(mu)  # nearest codes, straight-through; trains the codebook's EMA
        else:
            z = mu if logvar is None else mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self._head(self.decoder(z), z), mu, logvar, z


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

