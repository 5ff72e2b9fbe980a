"""How long do the disentanglement metrics take at disentanglement_lib's sample counts?

    python benchmarks/disentanglement_metrics.py [--checkpoint checkpoints/sprites-z10]
        [--untrained] [--fraction 1.0] [--dci-regressor gbt] [--seed 0] [--device auto]

Runs what vae_core.disentanglement.all_metrics runs, stage by stage, on the sprites
ground truth (colour when the model takes 3 channels) and prints each stage's time and
result. At --fraction 1 the counts are disentanglement_lib's: BetaVAE 10,000 + 5,000
points of 64 pairs (1.92 M images encoded), FactorVAE 10,000 for the variances + 15,000
batches of 64 (0.97 M images), MIG/SAP/DCI 10,000 + 5,000 samples. --fraction 0.05 runs
a twentieth of every count (same protocol, noisier numbers) for a quick look.

--untrained times a freshly initialised model of the shipped sprites recipe instead
(conv-vae, z = 10, channels 32,32, hidden 256, 1x64x64): encoding costs the same as for
a trained one, but the classifiers' times and every score differ.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "sprites-z10"))
    p.add_argument("--untrained", action="store_true", help="time a random model of the sprites recipe")
    p.add_argument("--fraction", type=float, default=1.0, help="scale every sample count (1 = disentanglement_lib)")
    p.add_argument("--dci-regressor", default="gbt", choices=("gbt", "lasso", "random_forest"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    from vae_core import disentanglement as dis
    from vae_core.device import cpu_fast_layout, describe_device, resolve_device

    device = resolve_device(args.device)
    if args.untrained:
        from vae_core.models import ModelConfig, build_model
        torch.manual_seed(0)
        model = build_model(ModelConfig(kind="conv-vae", latent_dim=10, image_channels=1, image_size=64,
                                        channels=(32, 32), hidden=256))
        name = "untrained conv-vae z=10 (sprites recipe)"
    else:
        from vae_core.checkpoint import load_checkpoint
        model = load_checkpoint(args.checkpoint).model
        name = Path(args.checkpoint).name
    model = cpu_fast_layout(model.to(device).eval(), device)   # as vae_core.evaluate encodes
    data = dis.sprites_factor_data(colour=model.image_shape[0] == 3)
    rep = dis.representation_of(model, batch_size=512)

    def n(count):
        return max(2, round(count * args.fraction))
    counts = dict(batch_size=dis.BATCH_SIZE, num_train=n(dis.NUM_TRAIN), num_eval=n(dis.NUM_EVAL),
                  num_test=n(dis.NUM_TEST), num_variance_estimate=n(dis.NUM_VARIANCE_ESTIMATE))
    print(f"{name} on {describe_device(device)} (torch threads {torch.get_num_threads()}), seed {args.seed}, "
          f"counts {counts}, DCI regressor {args.dci_regressor}")

    total = 0.0

    def stage(label, fn):
        nonlocal total
        t = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t
        total += dt
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()} \
            if isinstance(result, dict) else ""
        print(f"  {label:<28} {dt:8.1f} s  {shown}")
        return result

    c = counts
    stage("BetaVAE score", lambda: dis.beta_vae_score(data, rep, args.seed, c["batch_size"], c["num_train"],
                                                        c["num_eval"]))
    stage("FactorVAE score", lambda: dis.factor_vae_score(data, rep, args.seed, c["batch_size"], c["num_train"],
                                                            c["num_eval"], c["num_variance_estimate"]))
    rng = np.random.default_rng(args.seed)
    train = stage("encode MIG/SAP/DCI samples", lambda: dis.sample_codes(data, rep, c["num_train"], rng))
    test = stage("encode SAP/DCI test samples", lambda: dis.sample_codes(data, rep, c["num_test"], rng))
    stage("MIG", lambda: dis.mig_from_codes(*train))
    stage("SAP", lambda: dis.sap_from_codes(*train, *test))
    stage(f"DCI ({args.dci_regressor})", lambda: dis.dci_from_codes(*train, *test, regressor=args.dci_regressor,
                                                                    rng=rng))
    print(f"  {'total (all_metrics work)':<28} {total:8.1f} s")
    return 0


if __name__ == "__main__":
    from vae_core import VaeError
    try:
        sys.exit(main())
    except VaeError as e:  # a missing checkpoint, a model for other images: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
