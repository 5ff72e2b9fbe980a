"""Compare: 2-4 models side by side (metrics, reconstructions, the same z, curves) and sweep results."""
import json
from pathlib import Path

import streamlit as st

from ui_common import ensure_app, get_checkpoint, get_test_images, public_mode, show_error, show_image
from vae_core import VaeError
from vae_core.catalog import list_models, runs_dir
from vae_core.compare import evaluations_rows, latent_badge, metrics_rows, named_sweeps, shared_z, text_width
from vae_core.evaluate import collapsed, evaluate_checkpoint, read_all_metrics, save_metrics
from vae_core.images import decode, reconstruct, tile
from vae_core.jobs import read_metrics as epoch_metrics
from vae_core.plots import sweep_nll_figure, sweep_rate_distortion_figure, training_curves_figure

ensure_app()
st.title("Compare")

entries = {e.key: e for e in list_models()}
current = st.session_state.get("model_key")
# the current model and, to start with, another one trained on the same data
others = sorted((k for k in entries if k != current), key=lambda k: entries[k].dataset != entries[current].dataset) \
    if current in entries else list(entries)
default = ([current] if current in entries else []) + others[:1]
picked = st.multiselect("Models (2 to 4)", list(entries), default=[k for k in default if k in entries],
                        max_selections=4, format_func=lambda k: entries[k].label, key="compare_models")
if len(picked) < 2:
    st.info("Pick at least two models to compare.")
else:
    ckpts, problems = {}, []
    for k in picked:
        try:
            ckpts[k] = get_checkpoint(str(entries[k].path), (entries[k].path / "model.safetensors").stat().st_mtime_ns)
        except (VaeError, OSError) as e:
            problems.append(f"{k}: {e}")
    for p in problems:
        st.error(f"Cannot load {p}")
    saved = {k: read_all_metrics(entries[k].path, ckpts[k].hash) for k in ckpts}  # most complete first
    metrics = {k: (saved[k] or [None])[0] for k in ckpts}

    st.subheader("Metrics")
    table = metrics_rows({k: (ckpts[k].model.latent_dim, metrics[k]) for k in ckpts})
    # sized to their longest value: left to itself the grid cut the protocol off mid-word
    wide = {c: st.column_config.TextColumn(width=text_width([r[c] for r in table], c))
            for c in ("protocol", "latent use")}
    st.dataframe(table, hide_index=True, column_config=wide)
    badges = st.columns(len(ckpts))
    icons = {"red": ":material/warning:", "green": ":material/check:", "blue": ":material/info:",
             "orange": ":material/block:"}
    for col, k in zip(badges, ckpts):
        text, color = latent_badge(metrics[k], ckpts[k].model.latent_dim)
        with col:
            st.badge(f"{k}: {text}", icon=icons.get(color), color=color)
    st.caption("Each row shows the model's most complete saved evaluation (the test split, then the most images, "
               "then the largest K, then the newest); compare NLLs only between rows of the same protocol. "
               "NLL is importance-sampled (the IWAE bound); `python -m vae_core.evaluate --checkpoint DIR "
               "--iw-samples 5000` gives Burda et al.'s protocol. \"collapsed\": the posterior carries almost no "
               "information about the image: no active units, I(x;z) under 0.05 nats, or decoding from another "
               "image's z costs under 2% more reconstruction loss. \"29/50 active\" is not a fault: a VAE switches "
               "off the latent dims it does not need. Discrete models (vq-vae, fsq) have no KL or NLL: their "
               "codebook use, perplexity and \"dead codes\" (codes no test image is given) say how much of the "
               "code they use. Disentanglement columns appear for models evaluated on data with factors.")
    if any(len(v) > 1 for v in saved.values()):
        with st.expander(f"All saved evaluations ({sum(map(len, saved.values()))})"):
            st.dataframe(evaluations_rows({k: v for k, v in saved.items() if v}), hide_index=True)
    missing = [k for k in ckpts if metrics[k] is None]
    if missing and public_mode():
        # an evaluation writes beside the model and holds the CPU for minutes: not in a shared demo
        st.caption(f"{', '.join(missing)} not evaluated; evaluation is off in this shared demo. "
                   "Run `python -m vae_core.evaluate --checkpoint DIR` on your own machine.")
    elif missing:
        if st.button(f"Evaluate {', '.join(missing)} (1,000 test images, K = 100)", icon=":material/calculate:"):
            for k in missing:
                bar = st.progress(0.0, text=f"Evaluating {k}…")
                try:
                    m = evaluate_checkpoint(
                        entries[k].path, limit=1000, iw_samples=100, save=False,
                        progress=lambda f, k=k, bar=bar: bar.progress(f, text=f"Evaluating {k}… {f:.0%}"))
                    if aside := save_metrics(entries[k].path, m).set_aside:
                        st.warning(f"{k}'s metrics.json could not be read; it was kept as {aside.name}.")
                except VaeError as e:
                    show_error(e)
                bar.empty()
            st.rerun()

    st.subheader("Reconstructions of the same test images")
    by_dataset = {}  # models of one dataset at one image shape share a row of inputs
    for k, ck in ckpts.items():
        by_dataset.setdefault((ck.dataset, ck.model.image_shape), []).append(k)
    for (dataset, (c, size, _)), keys in by_dataset.items():
        images = get_test_images(dataset, size, c)
        if images is None:
            st.info(f"The {dataset} test images are not on this machine (set VAE_DATA_ROOT), so no reconstructions.")
            continue
        shape = f" at {size}×{size}" if len(by_dataset) > 1 and any(
            d == dataset and s != (c, size, size) for d, s in by_dataset) else ""
        show_image(tile(images[None, :10], pad=2, pad_value=60), 640, f"{dataset} test images 0–9{shape}")
        for k in keys:
            _, recon = reconstruct(ckpts[k].model, images[:10])
            show_image(tile(recon[None], pad=2, pad_value=60), 640, k)

    st.subheader("The same z decoded by each model")
    by_dim = {}
    for k, ck in ckpts.items():
        by_dim.setdefault(ck.model.latent_dim, []).append(k)
    same = {d: keys for d, keys in by_dim.items() if len(keys) > 1}
    if not same:
        st.caption("Only models with the same latent dimension share a z; none of the picked ones do.")
    for d, keys in same.items():
        z = shared_z(d, 10)
        st.caption(f"Ten z drawn from the prior N(0, I) in {d} dimensions (fixed seed)")
        for k in keys:
            show_image(tile(decode(ckpts[k].model, z)[None], pad=2, pad_value=60), 640, k)

    st.subheader("Training curves")
    curves = {k: epoch_metrics(entries[k].path) for k in ckpts}
    if any(curves.values()):
        key = st.radio("Curve", ["test_loss", "loss", "recon", "kl"], horizontal=True, key="compare_curve",
                       format_func=lambda c: {"test_loss": "test −ELBO", "loss": "training loss"}.get(c, c))
        st.plotly_chart(training_curves_figure({k: v for k, v in curves.items() if v}, key), key="compare_curves")
    no_curve = [k for k, v in curves.items() if not v]
    if no_curve:
        st.caption(f"No per-epoch log (metrics.jsonl) for {', '.join(no_curve)}.")

st.divider()
st.subheader("Sweeps")
# short names ("runs/sweep", "benchmarks/sweep-default"): the picker never shows a server path
sweeps = named_sweeps({"runs": runs_dir(), "benchmarks": Path(__file__).resolve().parent.parent / "benchmarks"})
if not sweeps:
    st.info("No sweep results yet. Run `python -m vae_core.sweep --out runs/sweep` (the default grid takes "
            "under 30 minutes on 2 CPU cores); its results.json shows up here.")
else:
    where = st.selectbox("Sweep", list(sweeps), key="compare_sweep")
    try:
        rows = json.loads(sweeps[where].read_text())
    except (OSError, ValueError) as e:
        st.error(f"{where}/results.json cannot be read ({e.strerror if isinstance(e, OSError) else e}).")
        rows = []
    if rows:
        table = [{k: v for k, v in r.items() if k not in ("kl_per_dim", "checkpoint")} for r in rows]
        st.dataframe(table, hide_index=True)
        c1, c2 = st.columns(2)
        c1.plotly_chart(sweep_rate_distortion_figure(rows), key="sweep_rd")
        c2.plotly_chart(sweep_nll_figure(rows), key="sweep_nll")
        flagged = [f"{r['cell']} ({reason})" for r in rows if (reason := collapsed(r, r["latent_dim"]))]
        if flagged:
            st.caption("Collapsed: " + "; ".join(flagged))
