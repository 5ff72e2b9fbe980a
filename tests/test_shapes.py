"""Issue 13: images of any (C, H, W) with C in {1, 3} through models, checkpoints, losses and data."""
import json

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vae_core import VaeError
from vae_core.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from vae_core.models import MODEL_KINDS, ModelConfig, build_model, conv_depth

SHAPES = [(1, 28), (1, 64), (3, 32), (3, 64)]


# ---------------------------------------------------------------- models

@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_every_model_kind_encodes_and_decodes_every_shape(kind, channels, size):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, latent_dim=3, image_channels=channels, image_size=size, hidden=32,
                      channels=(8, 16), extra_decoder_layer=True, batchnorm=True)
    model = build_model(cfg)
    x = torch.rand(5, channels, size, size)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, 3)
    assert (logvar is None) != kind.endswith("-vae")
    assert model.decode(mu).shape == (5, channels, size, size)
    logits, *_ = model(x)
    assert logits.shape == x.shape


def test_conv_depth_follows_the_size_and_keeps_the_reference_at_28():
    assert [conv_depth(s) for s in (8, 14, 16, 28, 32, 48, 64, 128)] == [1, 1, 2, 2, 3, 3, 4, 5]
    assert ModelConfig(image_size=28).widths == (32, 64)   # the reference recipe, unchanged
    assert ModelConfig(image_size=64).widths == (32, 64, 128, 256)
    enc = build_model(ModelConfig(image_size=64, image_channels=3)).encoder.net
    convs = [m for m in enc if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 and convs[0].in_channels == 3
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in enc)
    for bad in (30, 100, 9):
        with pytest.raises(VaeError, match="halves exactly"):
            ModelConfig(image_size=bad)
    ModelConfig(kind="linear-vae", image_size=30)  # an MLP takes any size
    with pytest.raises(VaeError, match="1 \\(grey\\) or 3"):
        ModelConfig(image_channels=2)
    with pytest.raises(VaeError, match="likelihood"):
        ModelConfig(likelihood="poisson")


# ---------------------------------------------------------------- checkpoints

def test_new_checkpoints_record_the_shape_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_channels=3, image_size=32, likelihood="gaussian", latent_dim=4))
    with torch.no_grad():
        model.log_sigma.fill_(-1.5)
    save_checkpoint(tmp_path / "ck", model)
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["format_version"] == FORMAT_VERSION == 2
    assert (cfg["model"]["image_channels"], cfg["model"]["image_size"], cfg["model"]["likelihood"]) == (3, 32, "gaussian")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.model.image_shape == (3, 32, 32) and float(ck.model.log_sigma) == -1.5
    z = torch.randn(2, 4)
    assert torch.equal(ck.model.decode(z), model.eval().decode(z))


def test_version_1_folders_load_as_1x28x28_bernoulli(tmp_path):
    """A shipped folder is version 1 with no shape: it loads unchanged, and reading does not rewrite it."""
    import shutil
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "old")
    before = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}
    cfg = json.loads(before["config.json"])
    assert cfg["format_version"] == 1 and "image_size" not in cfg["model"]
    ck = load_checkpoint(tmp_path / "old")
    assert ck.model.image_shape == (1, 28, 28) and ck.model.likelihood == "bernoulli"
    assert not hasattr(ck.model, "log_sigma")
    assert {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()} == before
    # a version-1 config that names version-2 fields is damaged, not guessed at
    cfg["model"]["image_size"] = 64
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="version 1"):
        load_checkpoint(tmp_path / "old")
    cfg["format_version"] = 3
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="Upgrade the app"):
        load_checkpoint(tmp_path / "old")


def test_a_config_whose_shape_does_not_fit_the_weights_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model(ModelConfig(image_size=32)))
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model"]["image_channels"] = 3
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="does not fit"):
        load_checkpoint(tmp_path / "ck")


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_a_few_training_steps_lower_the_loss_at_every_shape(kind, channels, size):
    """Grey shapes train with the Bernoulli decoder, colour with the learned-sigma Gaussian."""
    from vae_core.losses import optimal_log_sigma, vae_loss
    torch.manual_seed(0)
    likelihood = "gaussian" if channels == 3 else "bernoulli"
    model = build_model(ModelConfig(kind=kind, latent_dim=4, image_channels=channels, image_size=size,
                                    hidden=64, channels=(8, 16), likelihood=likelihood))
    # a learnable batch: a bright square on a dark ground, in a different place per image
    x = torch.full((16, channels, size, size), 0.1)
    for i in range(16):
        r, c = (i * 3) % (size // 2), (i * 5) % (size // 2)
        x[i, :, r:r + size // 2, c:c + size // 2] = torch.linspace(0.6, 0.9, channels).view(-1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss():
        logits, mu, logvar, _ = model(x)
        ls = optimal_log_sigma(logits, x) if likelihood == "gaussian" else None  # as training does
        return vae_loss(logits, x, mu, logvar, beta=1.0, log_sigma=ls)["loss"]
    torch.manual_seed(1)
    with torch.no_grad():
        before = loss().item()
    for _ in range(40):
        opt.zero_grad()
        loss().backward()
        opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        after = loss().item()
    assert after < before - 0.05 * abs(before), (before, after)


# ---------------------------------------------------------------- the Gaussian likelihood

def test_gaussian_nll_prefers_the_exact_decoder_to_noise_and_has_the_right_form():
    from vae_core.losses import LOG_2PI, recon_gaussian, recon_nll
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=g) * 0.9 + 0.05
    exact = torch.logit(x)                               # sigmoid(exact) == x
    noise = torch.randn(8, 3, 32, 32, generator=g) * 2
    for ls in (torch.tensor(-3.0), torch.tensor(0.0)):
        assert (recon_gaussian(exact, x, ls) < recon_gaussian(noise, x, ls)).all()
    # exact mean: only the normaliser is left, D * (log sigma + log(2 pi) / 2)
    d = 3 * 32 * 32
    got = recon_gaussian(exact, x, torch.tensor(-3.0))
    assert torch.allclose(got, torch.full((8,), d * (-3.0 + 0.5 * LOG_2PI)), rtol=1e-4)
    # for a given error the best sigma is the RMS error (the sigma-VAE optimum): the NLL is lowest there
    mse = (torch.sigmoid(noise) - x).pow(2).mean()
    best = 0.5 * torch.log(mse)
    nll = lambda ls: recon_gaussian(noise, x, torch.tensor(float(ls))).sum()  # noqa: E731
    assert nll(best) < nll(best + 0.2) and nll(best) < nll(best - 0.2)
    # no log sigma: the Bernoulli NLL, as before
    assert torch.equal(recon_nll(noise, x), torch.nn.functional.binary_cross_entropy_with_logits(
        noise, x, reduction="none").flatten(1).sum(1))


def test_optimal_sigma_is_the_rms_error_and_floored():
    from vae_core.losses import optimal_log_sigma
    x = torch.full((2, 3, 4, 4), 0.5)
    logits = torch.logit(torch.full_like(x, 0.6))
    assert optimal_log_sigma(logits, x).item() == pytest.approx(np.log(0.1), abs=1e-5)
    assert optimal_log_sigma(torch.zeros_like(x), x).item() == -6.0  # exact: floored, not -inf
    assert not optimal_log_sigma(logits.requires_grad_(), x).requires_grad


def test_sigma_is_learned_in_training_and_saved(tmp_path):
    from vae_core.train import TrainConfig, train
    cfg = TrainConfig(dataset="color-sprites", limit=512, test_limit=64, epochs=2, batch_size=64,
                      latent_dim=4, hidden=64, lr=3e-3, device="cpu", precision="fp32", out=str(tmp_path / "r"))
    last = train(cfg, progress=False)
    ck = load_checkpoint(tmp_path / "r")
    assert ck.model_config.likelihood == "gaussian"  # auto: colour data gets the Gaussian decoder
    assert ck.model.image_shape == (3, 64, 64)
    sigma = float(ck.model.decoder_log_sigma().exp())
    assert sigma < 0.9 and abs(sigma - last["sigma"]) < 1e-6  # it moved down from 1
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert lines[1]["sigma"] < lines[0]["sigma"] < 1.0
    assert lines[1]["loss"] < lines[0]["loss"]
    # the recorded run: version 2, the shape in the dataset section, the command-line knobs kept
    cfg_json = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg_json["format_version"] == 2 and cfg_json["dataset"]["image_shape"] == [3, 64, 64]
    assert cfg_json["training"]["likelihood"] == "auto"


def test_evaluate_follows_the_likelihood(tmp_path):
    """neg_elbo and the IWAE NLL of a Gaussian model are Gaussian NLLs with its sigma, in nats per image."""
    from vae_core.evaluate import evaluate_model
    from vae_core.losses import kl_per_dim, recon_gaussian
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_channels=3, image_size=32, likelihood="gaussian", latent_dim=3,
                                    hidden=32, channels=(8, 16))).eval()
    with torch.no_grad():
        model.log_sigma.fill_(-2.0)
    images = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    m = evaluate_model(model, images, iw_samples=5, seed=0)
    x = images.float() / 255
    mu, logvar = model.encode(x)
    with torch.no_grad():
        recon_at_mu = recon_gaussian(model.decode(mu), x, model.decoder_log_sigma()).mean().item()
        kl = kl_per_dim(mu, logvar).sum(1).mean().item()
    assert abs(m["kl"] - kl) < 1e-3
    assert abs(m["recon"] - recon_at_mu) < 0.05 * abs(recon_at_mu)  # one z sample near mu
    assert m["neg_elbo"] == pytest.approx(m["recon"] + m["kl"])
    assert np.isfinite(m["nll"]) and m["nll"] <= m["neg_elbo"] + 1.0
    # a sharper sigma changes every likelihood figure: they are not the Bernoulli ones
    with torch.no_grad():
        model.log_sigma.fill_(0.0)
    assert abs(evaluate_model(model, images, iw_samples=5, seed=0)["recon"] - m["recon"]) > 100


# ---------------------------------------------------------------- the channel-gain decoder mean

def test_channel_gain_config_is_recorded_only_when_used_and_needs_the_gaussian(capsys):
    from vae_core.train import TrainConfig, main
    old = ModelConfig(image_channels=3, image_size=32, likelihood="gaussian")
    assert "decoder_mean" not in old.to_dict()  # sigmoid models write what they always wrote
    cg = ModelConfig(image_channels=3, image_size=32, likelihood="gaussian", decoder_mean="channel-gain")
    assert ModelConfig.from_dict(json.loads(json.dumps(cg.to_dict()))) == cg
    assert cg.to_dict()["decoder_mean"] == "channel-gain"
    with pytest.raises(VaeError, match="needs the Gaussian likelihood"):
        ModelConfig(image_channels=3, image_size=32, decoder_mean="channel-gain")
    with pytest.raises(VaeError, match="Unknown decoder mean"):
        ModelConfig(image_channels=3, image_size=32, likelihood="gaussian", decoder_mean="tanh")
    # auto: the head for colour Gaussian models only
    assert TrainConfig().model_config((3, 64, 64)).decoder_mean == "channel-gain"
    assert TrainConfig().model_config((1, 28, 28)).decoder_mean == "sigmoid"
    assert TrainConfig(likelihood="bernoulli").model_config((3, 32, 32)).decoder_mean == "sigmoid"
    assert TrainConfig(decoder_mean="sigmoid").model_config((3, 32, 32)).decoder_mean == "sigmoid"
    assert TrainConfig(likelihood="gaussian", decoder_mean="channel-gain").model_config((1, 28, 28)).decoder_mean \
        == "channel-gain"
    assert "decoder_mean" not in TrainConfig().to_dict()  # auto: the resolved head is in the model section
    assert main(["--dataset", "sprites", "--decoder-mean", "tanh"]) == 2
    # grey data is Bernoulli by default: refused once the data's shape is known, in one sentence
    assert main(["--dataset", "sprites", "--limit", "64", "--decoder-mean", "channel-gain"]) == 1
    assert "needs the Gaussian likelihood" in capsys.readouterr().err


def test_channel_gain_scales_each_channel_by_a_gain_from_z_and_is_its_own_mean():
    from vae_core.losses import LOG_2PI, recon_gaussian, recon_nll
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_channels=3, image_size=32, latent_dim=4, hidden=16, channels=(4, 8),
                                    likelihood="gaussian", decoder_mean="channel-gain")).eval()
    z = torch.randn(5, 4)
    with torch.no_grad():
        raw, gain = model.decoder(z), 1 + model.gain(z)
        out = model.decode(z)
    assert torch.allclose(out, raw * gain[:, :, None, None])
    with torch.no_grad():  # training's forward goes through the same head as decode
        fwd, _, _, zs = model(torch.rand(2, 3, 32, 32))
        assert torch.allclose(fwd, model.decode(zs), atol=1e-6)
    # the picture is the output clipped, not its sigmoid
    y = torch.tensor([-0.5, 0.25, 0.75, 1.5])
    assert torch.equal(model.pixels(y), torch.tensor([0.0, 0.25, 0.75, 1.0]))
    # its NLL takes the output as the mean: the exact output leaves only the normaliser
    x = torch.rand(3, 3, 8, 8)
    d = 3 * 8 * 8
    got = recon_nll(x, x, torch.tensor(-3.0), link="channel-gain")
    assert torch.allclose(got, torch.full((3,), d * (-3.0 + 0.5 * LOG_2PI)), rtol=1e-4)
    assert (recon_gaussian(x, x, torch.tensor(-3.0), "channel-gain")
            < recon_gaussian(x, x, torch.tensor(-3.0))).all()  # through a sigmoid x is not its own mean


def test_channel_gain_trains_and_passes_gradients_to_the_gain(tmp_path):
    from vae_core.train import TrainConfig, train
    cfg = TrainConfig(dataset="color-sprites", limit=256, test_limit=32, epochs=2, batch_size=64, latent_dim=4,
                      hidden=32, conv_channels="8,8", lr=3e-3, device="cpu", precision="fp32",
                      out=str(tmp_path / "r"))
    before = build_model(cfg.model_config((3, 64, 64)))
    train(cfg, progress=False)
    ck = load_checkpoint(tmp_path / "r")
    assert ck.model_config.decoder_mean == "channel-gain"
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert lines[1]["loss"] < lines[0]["loss"]
    assert not torch.equal(ck.model.gain.weight, before.gain.weight)  # the gain learned (and was saved)
    from vae_core.images import decode
    img = decode(ck.model, np.zeros(4, np.float32))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8


# ---------------------------------------------------------------- data

def _write_cifar(path, n, seed=0):
    """n records in CIFAR-10's binary format: label byte, then 1,024 R, 1,024 G, 1,024 B bytes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(bytes([labels[i]]) + pixels[i].tobytes() for i in range(n)))
    return labels, pixels


def test_cifar10_binary_reader_and_dataset(tmp_path, monkeypatch):
    from vae_core.data import CIFAR10_CLASSES, dataset_available, load_dataset, read_cifar10_bin
    monkeypatch.setenv("VAE_NO_DOWNLOAD", "1")
    folder = tmp_path / "cifar-10-batches-bin"
    parts = [_write_cifar(folder / f"data_batch_{i}.bin", 7, seed=i) for i in range(1, 6)]
    test_labels, test_pixels = _write_cifar(folder / "test_batch.bin", 9, seed=9)
    images, labels = read_cifar10_bin(folder / "test_batch.bin")
    assert images.shape == (9, 3, 32, 32) and images.dtype == torch.uint8
    assert np.array_equal(images.numpy(), test_pixels) and np.array_equal(labels.numpy(), test_labels)
    # the pixel (row 5, column 7) of the green plane is byte 1 + 1024 + 5*32 + 7 of its record
    raw = (folder / "test_batch.bin").read_bytes()
    assert images[2, 1, 5, 7].item() == raw[2 * 3073 + 1 + 1024 + 5 * 32 + 7]
    train = load_dataset("cifar10", "train", tmp_path)
    assert train.images.shape == (35, 3, 32, 32) and train.class_names == CIFAR10_CLASSES
    assert np.array_equal(train.labels[7:14].numpy(), parts[1][0])
    assert dataset_available("cifar10", tmp_path)
    grey64 = load_dataset("cifar10", "test", tmp_path, image_size=64, channels=1)
    assert grey64.images.shape == (9, 1, 64, 64)


def test_a_truncated_cifar10_file_gives_the_clear_error(tmp_path):
    from vae_core.data import load_dataset
    folder = tmp_path / "cifar-10-batches-bin"
    _write_cifar(folder / "test_batch.bin", 4)
    data = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(data[:-100])
    with pytest.raises(VaeError, match="truncated") as e:
        load_dataset("cifar10", "test", tmp_path)
    assert "test_batch.bin" in str(e.value) and "intact copy" in str(e.value)


def test_missing_cifar10_names_the_folder_and_files(tmp_path, monkeypatch):
    from vae_core.data import dataset_available, load_dataset
    monkeypatch.setenv("VAE_NO_DOWNLOAD", "1")
    with pytest.raises(VaeError) as e:
        load_dataset("cifar10", "test", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-bin") in msg and "data_batch_5.bin" in msg and "test_batch.bin" in msg
    assert "VAE_NO_DOWNLOAD" in msg and "binary" in msg
    assert not dataset_available("cifar10", tmp_path)


def _colour_images(folder, n, seed=0, size=(50, 40)):
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[..., i % 3] = rng.integers(100, 256, (size[1], size[0]), dtype=np.uint8)  # one pure hue each
        Image.fromarray(arr).save(folder / f"{i:02d}.png")


def test_colour_folder_with_class_subfolders(tmp_path):
    from vae_core.data import load_dataset
    for cls in ("red", "blue"):
        _colour_images(tmp_path / cls, 10, seed=len(cls))
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert train.images.shape == (18, 3, 64, 64) and test.images.shape == (2, 3, 64, 64)  # colour: 64 by default
    assert train.class_names == ["blue", "red"]
    # colour kept: image 0 of each class is pure red (channel 0), image 1 pure green
    assert train.images[0, 0].float().mean() > 100 and train.images[0, 1:].max() == 0
    assert train.images[1, 1].float().mean() > 100 and train.images[1, [0, 2]].max() == 0
    assert load_dataset(f"folder:{tmp_path}", "train", image_size=32).images.shape == (18, 3, 32, 32)
    grey = load_dataset(f"folder:{tmp_path}", "train", channels=1)
    assert grey.images.shape == (18, 1, 28, 28)  # grey asked for: 28 by default


def test_folder_of_images_without_class_subfolders_is_one_class(tmp_path):
    from vae_core.data import load_dataset
    from vae_core.jobs import train_images
    from vae_core.train import TrainConfig
    _colour_images(tmp_path / "pics", 20, size=(30, 60))  # tall: centre-cropped to 30x30 first
    train = load_dataset(f"folder:{tmp_path / 'pics'}", "train", image_size=32)
    assert train.images.shape == (18, 3, 32, 32) and train.class_names == ["pics"]
    assert set(train.labels.tolist()) == {0}
    assert train_images(TrainConfig(dataset=f"folder:{tmp_path / 'pics'}")) == 18 == len(train)


def test_sprites_are_wired_in_lazily_with_their_factors():
    from vae_core.data import LazyImages, class_names_for, dataset_available, load_dataset
    from vae_core.sprites import FACTOR_NAMES, SHAPES, render
    for name, c in (("sprites", 1), ("color-sprites", 3)):
        assert dataset_available(name) and class_names_for(name) == list(SHAPES)
        train = load_dataset(name, "train")
        assert isinstance(train.images, LazyImages)      # 727,280 images never materialised
        assert train.images.shape == (727_280, c, 64, 64) and len(train) == 727_280
        assert train.factors.shape == (727_280, 5) and train.factor_names == FACTOR_NAMES
        assert np.array_equal(train.labels.numpy(), train.factors[:, 0])
        rows = torch.tensor([5, 700_000, 17])
        batch = train.images[rows]
        assert batch.shape == (3, c, 64, 64) and batch.dtype == torch.uint8
        want = render(train.factors[rows.numpy()], colour=c == 3)
        assert np.array_equal(batch.numpy().reshape(want.shape), want)
        sub = load_dataset(name, "train", limit=100)
        assert isinstance(sub.images, torch.Tensor) and sub.images.shape == (100, c, 64, 64)
        assert np.array_equal(sub.factors, train.factors[:100])  # the subset is a prefix of the split's order
    test = load_dataset("sprites", "test", image_size=32)
    assert isinstance(test.images, torch.Tensor) and test.images.shape == (10_000, 1, 32, 32)


def test_job_size_counts_the_new_datasets_without_loading_them():
    from vae_core.jobs import train_images
    from vae_core.train import TrainConfig
    assert train_images(TrainConfig(dataset="sprites")) == 727_280
    assert train_images(TrainConfig(dataset="color-sprites", limit=5000)) == 5000
    assert train_images(TrainConfig(dataset="cifar10")) == 50_000


# ---------------------------------------------------------------- the display contract

def test_display_layout_for_grey_and_colour_models():
    from vae_core.data import to_float
    from vae_core.images import decode, decode_grid, grid_axes, png_bytes, reconstruct, tile, to_display, upscale
    from PIL import Image
    import io
    nchw = (torch.rand(4, 3, 8, 8) * 255).to(torch.uint8)
    disp = to_display(nchw)
    assert disp.shape == (4, 8, 8, 3) and np.array_equal(disp[1, 2, 3], nchw[1, :, 2, 3].numpy())
    assert to_display(nchw[:, :1]).shape == (4, 8, 8)
    # to_float takes NCHW and both display layouts to the same NCHW floats
    assert torch.equal(to_float(disp), to_float(nchw)) and torch.equal(to_float(disp[..., 0]), to_float(nchw[:, :1]))
    torch.manual_seed(0)
    colour = build_model(ModelConfig(image_channels=3, image_size=32, likelihood="gaussian", latent_dim=2)).eval()
    grey = build_model(ModelConfig(image_size=64, latent_dim=2)).eval()
    assert decode(colour, np.zeros(2)).shape == (32, 32, 3) and decode(colour, np.zeros((5, 2))).shape == (5, 32, 32, 3)
    assert decode(grey, np.zeros((5, 2))).shape == (5, 64, 64)
    mu, rec = reconstruct(colour, to_display((torch.rand(3, 3, 32, 32) * 255).to(torch.uint8)))
    assert mu.shape == (3, 2) and rec.shape == (3, 32, 32, 3) and rec.dtype == np.uint8
    mosaic = decode_grid(colour, np.zeros(2), grid_axes(3), grid_axes(4), (np.eye(2)[0], np.eye(2)[1]))
    assert mosaic.shape == (4 * 32, 3 * 32, 3)
    assert tile(rec[None], pad=2, pad_value=9).shape == (32, 3 * 32 + 4, 3)
    assert upscale(rec[0], 96).shape == (96, 96, 3)
    im = Image.open(io.BytesIO(png_bytes(rec[0], scale=2)))
    assert im.mode == "RGB" and im.size == (64, 64)
    assert np.array_equal(np.asarray(im)[::2, ::2], rec[0])


def test_webdecoder_exports_models_of_any_size_and_channels():
    from vae_core.webdecoder import decoder_blob, decoder_layers, read_blob, run_layers
    torch.manual_seed(0)
    grey = build_model(ModelConfig(image_size=32, latent_dim=3, hidden=16, channels=(4, 8),
                                   extra_decoder_layer=True)).eval()
    z = np.array([0.3, -1.0, 0.5], np.float32)
    want = grey.decode(torch.from_numpy(z)[None])[0].detach().numpy()
    got = run_layers(read_blob(decoder_blob(grey)), z)
    assert got.shape == (1, 32, 32) and np.allclose(got, want, atol=1e-4)
    colour = build_model(ModelConfig(image_channels=3, image_size=64, latent_dim=3, hidden=16, channels=(4, 8))).eval()
    want = colour.decode(torch.from_numpy(z)[None])[0].detach().numpy()
    got = run_layers(read_blob(decoder_blob(colour)), z)
    assert got.shape == (3, 64, 64) and np.allclose(got, want, atol=1e-4)
    assert decoder_layers(colour)[-1]["cout"] == 3
    # the channel-gain head: the gain layer runs on z, and the last entry says "clip, not sigmoid"
    cg = build_model(ModelConfig(image_channels=3, image_size=32, latent_dim=3, hidden=16, channels=(4, 8),
                                 likelihood="gaussian", decoder_mean="channel-gain")).eval()
    with torch.no_grad():
        cg.gain.weight.mul_(10)  # gains far from 1, so a wrong channel or a missing gain shows
    want = cg.decode(torch.from_numpy(z)[None])[0].detach().numpy()
    layers = read_blob(decoder_blob(cg))
    assert [L["op"] for L in layers[-2:]] == ["gain", "pixels"] and layers[-1]["mean"] == "clip"
    got = run_layers(layers, z)
    assert got.shape == (3, 32, 32) and np.allclose(got, want, atol=1e-4)
    assert not np.allclose(got, cg.decoder(torch.from_numpy(z)[None])[0].detach().numpy(), atol=1e-2)


def test_latent_cache_and_evaluation_load_the_split_in_the_models_shape(tmp_path, cache_root):
    """A sprites model trained at 32x32: encoding its test split resizes the split as training did."""
    from vae_core.evaluate import evaluate_checkpoint
    from vae_core.latents import encode_dataset
    from vae_core.train import TrainConfig, train
    train(TrainConfig(dataset="sprites", limit=256, test_limit=32, epochs=1, batch_size=64, latent_dim=2,
                      hidden=32, image_size=32, device="cpu", precision="fp32", out=str(tmp_path / "r")),
          progress=False)
    ck = load_checkpoint(tmp_path / "r")
    assert ck.model.image_shape == (1, 32, 32) and ck.class_names == ["square", "ellipse", "heart"]
    lat = encode_dataset(ck, "test", cache_root=cache_root)
    assert lat.mu.shape == (10_000, 2) and set(np.unique(lat.labels)) == {0, 1, 2}
    m = evaluate_checkpoint(tmp_path / "r", limit=50, iw_samples=3, save=False)
    assert m["images"] == 50 and np.isfinite(m["nll"])


def test_cli_takes_likelihood_image_size_and_channels(tmp_path):
    from vae_core.train import config_from_args, main
    cfg = config_from_args(["--dataset", "color-sprites", "--likelihood", "bernoulli", "--image-size", "32",
                            "--channels", "1"])
    assert (cfg.likelihood, cfg.image_size, cfg.channels) == ("bernoulli", 32, "1")
    assert cfg.model_config((1, 32, 32)).likelihood == "bernoulli"
    assert main(["--dataset", "sprites", "--image-size", "30"]) == 2  # the conv stack cannot halve 30 cleanly
    assert main(["--dataset", "sprites", "--channels", "2"]) == 2
    assert main(["--dataset", "sprites", "--likelihood", "laplace"]) == 2
    assert main(["--dataset", "color-sprites", "--limit", "128", "--test-limit", "16", "--epochs", "1",
                 "--batch-size", "64", "--image-size", "32", "--channels", "1", "--likelihood", "gaussian",
                 "--hidden", "32", "--device", "cpu", "--out", str(tmp_path / "c")]) == 0
    ck = load_checkpoint(tmp_path / "c")
    assert ck.model.image_shape == (1, 32, 32) and ck.model_config.likelihood == "gaussian"


def test_colour_gif_has_one_frame_per_step_and_keeps_the_colours():
    import io
    from PIL import Image
    from vae_core.gif import gif_bytes, gif_info
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    for t, rgb in enumerate([(255, 0, 0), (0, 200, 0), (0, 0, 160), (0, 0, 160)]):  # the last two identical
        frames[t, 2:6, 2:6] = rgb
    data = gif_bytes(frames, size=32, fps=10, labels=True)
    info = gif_info(data)
    assert info["frames"] == 4 and info["size"] == (32, 32)
    im = Image.open(io.BytesIO(data))
    for t, rgb in enumerate([(255, 0, 0), (0, 200, 0), (0, 0, 160), (0, 0, 160)]):
        im.seek(t)
        px = np.asarray(im.convert("RGB"))
        assert tuple(px[16, 16]) == rgb and tuple(px[30, 30]) == (0, 0, 0)
    with pytest.raises(VaeError, match="colour"):
        gif_bytes(np.zeros((2, 8, 8, 4), np.uint8))


def test_training_on_the_whole_sprites_split_renders_batches_lazily(tmp_path):
    """No --limit: 727,280 images a epoch, each batch rendered when it is drawn. The run is
    stopped after a few steps from the step callback (what Cancel does to a job)."""
    from vae_core.train import TrainConfig, train

    class Enough(Exception):
        pass
    seen = []

    def on_step(epoch, step, steps):
        seen.append(steps)
        if step == 5:
            raise Enough
    cfg = TrainConfig(dataset="color-sprites", test_limit=16, epochs=1, batch_size=256, latent_dim=2,
                      hidden=16, image_size=32, device="cpu", precision="fp32", out=str(tmp_path / "r"))
    with pytest.raises(Enough):
        train(cfg, progress=False, on_step=on_step)
    assert seen == [2841] * 5  # ceil(727,280 / 256) steps an epoch: the whole split, lazily
    header = json.loads((tmp_path / "r" / "config.json").read_text())
    assert header["dataset"]["train_size"] == 727_280 and header["model"]["likelihood"] == "gaussian"
