import json
import pickle

import pytest
import torch

from vae_core import VaeError
from vae_core.checkpoint import checkpoint_hash, list_checkpoints, load_checkpoint, save_checkpoint
from vae_core.models import ModelConfig, build_model


def _model(**kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(**kw))


def test_round_trip_is_bit_exact(tmp_path):
    model = _model(kind="conv-vae", latent_dim=3, extra_decoder_layer=True, batchnorm=True)
    h = save_checkpoint(tmp_path / "ck", model, training={"beta": 0.1}, dataset={"name": "mnist"},
                        metrics={"test_loss": 1.5}, command="python -m vae_core.train --x")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.hash == h == checkpoint_hash(tmp_path / "ck")
    assert ck.model_config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), ck.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert ck.config["command"] == "python -m vae_core.train --x"
    assert ck.dataset == "mnist" and not ck.model.training
    # no temporary files are left behind
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]


def test_hash_changes_with_weights(tmp_path):
    h1 = save_checkpoint(tmp_path / "a", _model(latent_dim=2))
    model = _model(latent_dim=2)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert save_checkpoint(tmp_path / "b", model) != h1


def test_pickle_named_safetensors_is_refused_without_unpickling(tmp_path):
    folder = tmp_path / "evil"
    save_checkpoint(folder, _model())

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (folder / "model.safetensors").write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(VaeError, match="model.safetensors is not a valid safetensors"):
        load_checkpoint(folder)
    assert not (tmp_path / "pwned").exists()
    # and torch's own zip-pickle format is refused the same way
    torch.save(_model().state_dict(), folder / "model.safetensors")
    with pytest.raises(VaeError, match="model.safetensors"):
        load_checkpoint(folder)


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5])
def test_truncated_weights_give_a_clear_error(tmp_path, keep):
    folder = tmp_path / "ck"
    save_checkpoint(folder, _model())
    data = (folder / "model.safetensors").read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    (folder / "model.safetensors").write_bytes(data[:n])
    with pytest.raises(VaeError, match=str(folder / "model.safetensors")):
        load_checkpoint(folder)


def test_unknown_format_version_and_broken_json(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, _model())
    cfg = json.loads((folder / "config.json").read_text())
    cfg["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="format version 99"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(VaeError, match="config.json is not valid JSON"):
        load_checkpoint(folder)


def test_shape_mismatch_names_the_file(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, _model(latent_dim=2))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["latent_dim"] = 5
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="does not fit the model"):
        load_checkpoint(folder)


def test_missing_files(tmp_path):
    with pytest.raises(VaeError, match="config.json is missing"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "ck", _model())
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(VaeError, match="model.safetensors is missing"):
        load_checkpoint(tmp_path / "ck")


def test_list_checkpoints(tmp_path):
    save_checkpoint(tmp_path / "b", _model())
    save_checkpoint(tmp_path / "a", _model())
    (tmp_path / "not-one").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["a", "b"]


def _crafted(tmp_path, **model_changes):
    """A copy of a real checkpoint whose config.json's model section was edited by hand."""
    folder = tmp_path / "crafted"
    save_checkpoint(folder, _model())
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"].update(model_changes)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize("changes,match", [
    ({"latent_dim": 16}, "does not fit.*the config wants"),  # checked on the meta device: no memory taken
    ({"latent_dim": 2_000_000}, "impossible model"),        # was 34 s and a 6.9 GB peak before the refusal
    ({"latent_dim": 10 ** 9}, "impossible model"),          # was an uncaught allocation error
    ({"channels": [1e9, 1]}, "impossible model"),
    ({"channels": ["a", 1]}, "no usable 'model' section"),  # was an uncaught ValueError
    ({"channels": [32, 64, 128]}, "channels"),
    ({"hidden": True}, "impossible model"),
    ({"latent_dim": [1, 2]}, "whole number"),
])
def test_a_crafted_model_config_is_refused_before_anything_is_allocated(tmp_path, changes, match):
    with pytest.raises(VaeError, match=match):
        load_checkpoint(_crafted(tmp_path, **changes))


def test_a_huge_integer_or_deep_nesting_in_config_json_is_a_clear_error(tmp_path):
    folder = _crafted(tmp_path)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text.replace('"latent_dim": 2', '"latent_dim": ' + "9" * 5000))
    with pytest.raises(VaeError, match="not valid JSON"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("[" * 100_000)  # was a RecursionError on every page
    with pytest.raises(VaeError, match="not valid JSON"):
        load_checkpoint(folder)


def test_nan_or_inf_weights_are_refused_with_a_clear_message(tmp_path):
    for bad in (float("nan"), float("inf")):
        model = _model()
        with torch.no_grad():
            next(model.parameters())[0].fill_(bad)
        save_checkpoint(tmp_path / "diverged", model)
        with pytest.raises(VaeError, match="NaN or infinite weights"):
            load_checkpoint(tmp_path / "diverged")
