"""Ship a finished training run as checkpoints/<name>: weights, config, test-set latent cache.

    python scripts/ship_model.py runs/z2 mnist-z2 [--data-root ../shared/datasets]

Copies model.safetensors, config.json and metrics.jsonl (the per-epoch log, ~10 KB,
which the Compare page draws as training curves), encodes the test split
into cache/<hash>/ (the app then works with no dataset), measures how well the
classes separate in latent space (5-NN accuracy of the test-set means, 3-fold
cross-validation) and the active units, and records both under "evaluation" in
config.json. Refuses a checkpoint over 8 MB.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vae_core.checkpoint import load_checkpoint  # noqa: E402
from vae_core.files import atomic_write_json  # noqa: E402
from vae_core.latents import encode_dataset, knn_accuracy  # noqa: E402
from vae_core.losses import active_units  # noqa: E402

MAX_BYTES = 8 * 1024 * 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("name")
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    src, dst = Path(args.run), REPO / "checkpoints" / args.name
    size = (src / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{src}/model.safetensors is {size / 2**20:.1f} MB; shipped models must be <= 8 MB.")
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("model.safetensors", "config.json", "metrics.jsonl"):
        shutil.copy2(src / f, dst / f)
    (dst / "metrics.json").unlink(missing_ok=True)  # another model's scores; vae_core.evaluate writes it anew
    ck = load_checkpoint(dst)
    lat = encode_dataset(ck, "test", data_root=args.data_root, cache_root=REPO / "cache")
    import torch
    evaluation = {"knn5_accuracy": round(knn_accuracy(lat.mu, lat.labels), 4),
                  "active_units": active_units(torch.from_numpy(lat.mu)),
                  "latent_dim": ck.model.latent_dim,
                  "protocol": "5-NN accuracy of the 10,000 test-set posterior means, stratified 3-fold CV"}
    config = json.loads((dst / "config.json").read_text())
    config["evaluation"] = evaluation
    atomic_write_json(dst / "config.json", config)
    print(json.dumps({"name": args.name, "hash": ck.hash, "size_mb": round(size / 2**20, 2),
                      "test_loss": config["metrics"].get("test_loss"), **evaluation}))


if __name__ == "__main__":
    main()
