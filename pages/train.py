"""Train: start, watch and cancel background training jobs (vae_core.jobs)."""
import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui_common import ensure_app, forget_served_files, picker_key, public_mode, show_error
from vae_core import VaeError
from vae_core.data import BINARIZE_CHOICES
from vae_core.device import DEVICE_CHOICES
from vae_core.jobs import (PRESETS, cancel_job, delete_job, epoch_grids, eta_seconds, gallery_gif, gallery_problem,
                           job_summary, log_tail, read_metrics, refresh, schedule, settings_to_flags, start_job)
from vae_core.losses import BETA_SCHEDULES
from vae_core.families import FAMILIES, FAMILY_MODELS
from vae_core.models import DECODER_MEANS, LIKELIHOODS, MODEL_KINDS

DATASET_CHOICES = ["mnist", "fashion-mnist", "digits", "sprites", "color-sprites", "cifar10", "folder"]

# Defence in depth: app.py leaves this page out in public mode, but a page script can
# still be reached on its own; a shared demo must never start processes on the server.
if public_mode():
    st.error("Training is off in this public demo (VAE_PUBLIC=1): run the app without it to train models.")
    st.stop()
ensure_app()
st.title("Train")
STATE_ICON = {"queued": ":material/schedule:", "running": ":material/play_circle:", "done": ":material/check_circle:",
              "failed": ":material/error:", "cancelled": ":material/cancel:"}

with st.expander("New training job", expanded=not refresh()):
    preset = st.selectbox("Preset", list(PRESETS), key="train_preset",
                          help="Reference recipes; every field below stays editable.")
    p = PRESETS[preset]
    choices = list(MODEL_KINDS + FAMILY_MODELS)
    # outside the form: picking a family shows its own hyperparameters at once
    model = st.selectbox("Model", choices, index=choices.index(p["model"]), key=f"train_model_{preset}",
                         format_func=lambda m: m if m in MODEL_KINDS else
                         f"{m} ({'ConvVAE' if FAMILIES[m].kind == 'conv-vae' else 'ConvAE'}, "
                         f"{FAMILIES[m].paper.split(',')[0]} et al.)",
                         help="conv/linear × VAE/AE (the AE-vs-VAE comparison), or a family of the literature: "
                              "the same ConvVAE with another objective, or (vq-vae, fsq) a ConvAE whose z is "
                              "discrete")
    family = FAMILIES.get(model)
    if family:
        st.caption(f"{family.paper}: {family.idea}.")
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Dataset", DATASET_CHOICES, index=DATASET_CHOICES.index(p["dataset"]),
                               help="digits is scikit-learn's bundled set: always there, trains in seconds; "
                                    "sprites and color-sprites are generated (64×64, dSprites' factor grid); "
                                    "folder: the server folder named below")
        # fsq has one channel per level count; vq-vae's z is slots of --code-dim numbers
        default_dim = {"fsq": len(str(family.defaults().get("fsq_levels", "")).split(",")),
                       "vq-vae": 4 * int(family.defaults().get("code_dim", 1))}.get(model, p["latent_dim"]) \
            if family and model != p["model"] else p["latent_dim"]
        latent_dim = c2.number_input("Latent dim", 1, 512, default_dim,
                                     help="fsq: one channel per level count; vq-vae: a multiple of code-dim")
        family_values = {}
        if family:  # its own weights; β, its schedule and free bits belong to the plain ELBO
            for i, prm in enumerate(family.params):
                col = (c3, c1, c2)[i % 3]
                label = prm.flag.removeprefix("--")
                start = p.get(prm.name, prm.default) if model == p["model"] else prm.default  # the preset's own
                if prm.parse:  # a text value (fsq's levels)
                    family_values[prm.name] = col.text_input(label, str(start), help=prm.help).strip()
                elif prm.choices:
                    family_values[prm.name] = col.selectbox(label, prm.choices, index=prm.choices.index(start),
                                                            help=prm.help)
                elif isinstance(prm.default, int):
                    family_values[prm.name] = int(col.number_input(label, int(prm.low or 0), int(prm.high or 10**6),
                                                                   int(start), help=prm.help))
                else:
                    family_values[prm.name] = col.number_input(label, value=float(start), format="%.4g",
                                                               help=prm.help)
            beta = schedule_name = warmup = free_bits = auto_fb = None
        else:
            beta = c3.number_input("β (KL weight)", 0.0, 100.0, float(p.get("beta", 1.0)), step=0.05,
                                   help="loss = BCE + β·KL per image; small β → sharper, less regular latents")
            schedule_name = c1.selectbox("β schedule", BETA_SCHEDULES, index=BETA_SCHEDULES.index(p["beta_schedule"]),
                                         help="linear: warm up from 0 against posterior collapse; "
                                              "cyclical: Fu et al. 2019")
            warmup = c2.number_input("Warm-up epochs", 0.0, 100.0, float(p["warmup_epochs"]), step=1.0)
            free_bits = c3.number_input("Free bits ε (nats per dim)", 0.0, 10.0, float(p["free_bits"]), step=0.05,
                                        help="KL floor per dimension: keeps dimensions from collapsing")
            auto_fb = c1.checkbox("Adaptive free bits", False,
                                  help="ε set each epoch from the measured KL per dimension, so no dimension "
                                       "collapses and the total KL approaches the target (replaces ε above)")
            target_kl = c2.number_input("Target KL (nats per image)", 0.1, 10_000.0, 10.0, step=1.0,
                                        help="the total rate adaptive free bits aims at")
            if auto_fb:
                free_bits = "auto"
        c1, c2, c3 = st.columns(3)
        epochs = c2.number_input("Epochs", 1, 500, p["epochs"])
        batch = c3.number_input("Batch size", 1, 8192, p["batch_size"])
        lr = c1.number_input("Learning rate", 1e-6, 1.0, float(p["lr"]), format="%.4g")
        processes = c1.number_input("Processes per job (GPUs on CUDA)", 1,
                                    max(os.cpu_count() or 1, torch.cuda.device_count()), 1,
                                    help="data-parallel training with torchrun: each process trains on its share "
                                         "of every batch (one GPU each on CUDA, gloo on the CPU); the batch size "
                                         "is per process, so the global batch is processes × batch size. The job "
                                         "takes that many slots of its device.")
        seed = c2.number_input("Seed", 0, 2**31 - 1, 0)
        device = c3.selectbox("Device", DEVICE_CHOICES, help="auto: CUDA, then Apple MPS, then the CPU")
        dec1 = c1.checkbox("Extra decoder layer (dec+1)", p["extra_decoder_layer"],
                           help="one more ConvTranspose k3 s1 at the decoder head: sharper strokes")
        bn = c2.checkbox("BatchNorm in the encoder", p["batchnorm"])
        binarize = c3.selectbox("Binarize", BINARIZE_CHOICES, help="dynamic: Bernoulli resample per batch")
        likelihood = c1.selectbox("Decoder likelihood", ["auto", *LIKELIHOODS],
                                  help="auto: Bernoulli for grey data, Gaussian with the optimal σ (σ-VAE) "
                                       "for colour")
        size = c2.selectbox("Image size", ["auto", 28, 32, 64],
                            help="auto: the dataset's own (a folder: 28 grey, 64 colour)")
        limit = c3.number_input("Training images (0: all)", 0, 10_000_000, p.get("limit") or 0, step=1000,
                                help="a fixed random subset; the sprites grid has 727,280 training images")
        widths = c1.text_input("Conv widths", p.get("conv_channels", "32,64"),
                               help="channels of the first two convolutions; deeper ones double the last "
                                    "(64×64 images get 32,64,128,256; 32,32 gives 32,32,64,128: 5 MB, not 11.5)")
        hidden = c2.number_input("Hidden units", 1, 4096, p.get("hidden", 256),
                                 help="the fully connected layer between the convolutions and z")
        decoder_mean = c3.selectbox("Decoder mean", ["auto", *DECODER_MEANS],
                                    help="auto: channel-gain for colour Gaussian models, sigmoid otherwise. "
                                         "channel-gain multiplies the decoder's output by one gain per colour "
                                         "channel computed from z and uses it as the mean: it learns hue, "
                                         "which a sigmoid colour decoder can lose (grey reconstructions)")
        folder = st.text_input("Folder (for the dataset 'folder')", placeholder="/data/my-images",
                               help="one subfolder per class, or images directly in it; colour is kept")
        submitted = st.form_submit_button("Start job", type="primary")
    if submitted:
        settings = dict(dataset=dataset, model=model, latent_dim=int(latent_dim), beta=beta,
                        beta_schedule=schedule_name, warmup_epochs=warmup, free_bits=free_bits, **family_values,
                        target_kl=target_kl if auto_fb else None,
                        extra_decoder_layer=dec1, batchnorm=bn, epochs=int(epochs), batch_size=int(batch), lr=lr,
                        lr_schedule=p["lr_schedule"], seed=int(seed), device=device, binarize=binarize,
                        likelihood=likelihood, decoder_mean=decoder_mean,
                        image_size=None if size == "auto" else int(size),
                        limit=int(limit) or None, conv_channels=widths.strip(), hidden=int(hidden))
        if dataset == "folder":
            settings["dataset"] = f"folder:{folder.strip()}"
        try:
            job = start_job(settings_to_flags(settings), processes=int(processes))
            st.session_state["train_selected"] = job
            st.success(f"Job {job} started.")
        except VaeError as e:
            show_error(e)


def _open_in_explore(job_id: str):
    st.session_state[picker_key()] = f"runs/{job_id}"  # a callback may set the picker's value
    st.session_state["goto_explore"] = True


def _row_text(job: dict) -> str:
    """What a job trains, then where it stands: "digits · conv-vae · z=2 · β=0.5 · 3 epochs · running · …"."""
    pr = job.get("progress") or {}
    text = (f"{STATE_ICON[job['state']]} {job_summary(job)} · {job['state']} · {job.get('device', '?')} · "
            f"epoch {pr.get('epoch', 0):.1f}/{pr.get('epochs', '?')}")
    if job["state"] == "running" and pr.get("steps"):
        text += f" · step {pr['step']}/{pr['steps']}"
    eta = eta_seconds(job)
    if eta is not None:
        text += f" · ETA {eta:.0f} s"
    return text + f" · {job['id']}"  # the id last: it is what the CLI takes


def _active(jobs) -> bool:
    return any(j["state"] in ("queued", "running") for j in jobs)


def job_board(live: bool):
    """The jobs, and the selected one's details. live: this fragment reruns itself every 2 s
    (only while a job is queued or running; see the bottom of this page)."""
    if st.session_state.pop("goto_explore", False):
        st.switch_page("pages/explore.py")
    schedule()
    jobs = refresh()[::-1]  # newest first
    if live and not _active(jobs):
        st.rerun(scope="app")  # the last job ended: redraw the board without its timer
    if not jobs:
        st.info("No jobs yet: start one above. Jobs run in their own processes and survive reloads.")
        return
    for job in jobs:
        pr = job.get("progress") or {}
        c1, c2 = st.columns([3, 2])
        c1.progress(min(1.0, (pr.get("epoch") or 0) / max(pr.get("epochs") or 1, 1)), text=_row_text(job))
        if c2.button("Details", key=f"sel_{job['id']}"):
            st.session_state["train_selected"] = job["id"]
    selected = next((j for j in jobs if j["id"] == st.session_state.get("train_selected")), jobs[0])
    st.subheader(f"{job_summary(selected)} — {selected['state']}")
    st.caption(f"Job {selected['id']}")
    if selected.get("error"):
        st.error(selected["error"].splitlines()[0])
    b1, b2, b3 = st.columns(3)
    if selected["state"] in ("queued", "running") and b1.button("Cancel", key="cancel_job"):
        cancel_job(selected["id"])
        st.rerun(scope="fragment")
    if selected["state"] == "done":
        b1.button("Open in Explore", key="open_job", type="primary", on_click=_open_in_explore,
                  args=(selected["id"],))
    with b2.popover("Delete", disabled=selected["state"] == "running"):
        st.write("Delete this job's folder and checkpoint?")
        if st.button("Yes, delete", key="delete_job"):
            try:
                forget_served_files(delete_job(selected["id"]))  # its decoder and points files too
                st.session_state.pop("train_selected", None)
                st.rerun(scope="fragment")
            except VaeError as e:
                show_error(e)
    metrics = read_metrics(selected["folder"])
    if metrics:
        ep = [m["epoch"] for m in metrics]
        curves = go.Figure([go.Scatter(x=ep, y=[m[k] for m in metrics], name=k, mode="lines+markers")
                            for k in ("loss", "recon", "kl", "test_loss")])
        curves.update_layout(height=300, margin=dict(l=40, r=10, t=30, b=40), xaxis_title="epoch",
                             yaxis_title="nats per image", legend=dict(orientation="h", y=1.02, yanchor="bottom"))
        c1, c2 = st.columns(2)
        c1.plotly_chart(curves, key="job_curves")
        if "codebook_usage" in metrics[-1]:  # fsq / vq-vae: no KL; how much of the codebook each epoch used
            use = go.Figure([go.Scatter(x=ep, y=[100 * m["codebook_usage"] for m in metrics], name="codes used (%)",
                                        mode="lines+markers"),
                             go.Scatter(x=ep, y=[m["perplexity"] for m in metrics], name="perplexity",
                                        mode="lines+markers", yaxis="y2")])
            use.update_layout(height=300, margin=dict(l=40, r=40, t=40, b=80), xaxis_title="epoch",
                              yaxis=dict(title="codes used (%)", range=[0, 105]),
                              yaxis2=dict(title="perplexity", overlaying="y", side="right", rangemode="tozero"),
                              legend=dict(orientation="h", y=-0.35, yanchor="top"),
                              title=f"Codebook · last epoch {metrics[-1]['codebook_usage']:.0%} used, "
                                    f"perplexity {metrics[-1]['perplexity']:.0f}")
            c2.plotly_chart(use, key="job_codebook")
        else:
            kl = np.asarray(metrics[-1]["test_kl_per_dim"])
            bars = go.Figure(go.Bar(x=[f"z[{i}]" for i in range(len(kl))], y=kl))
            bars.update_layout(height=300, margin=dict(l=40, r=10, t=30, b=40), yaxis_title="KL (nats)",
                               title=f"KL per dimension · active units {metrics[-1]['active_units']}/{len(kl)}")
            c2.plotly_chart(bars, key="job_kl")
    by_epoch = epoch_grids(selected["folder"])
    if by_epoch:
        # the training gallery: any epoch's grids, not only the last; the newest unless the user picks one
        epochs = list(by_epoch)
        ep = epochs[-1]
        if len(epochs) > 1:
            ep = st.select_slider("Epoch", epochs, value=epochs[-1], key=f"gallery_{selected['id']}_{len(epochs)}",
                                  help="the grids written after each epoch: the same test images and the same "
                                       "prior draws every epoch, so you watch one set of samples learn")
        grids = by_epoch[ep]
        c1, c2 = st.columns([2, 1])
        if "recon" in grids:
            c1.image(str(grids["recon"]), caption=f"epoch {ep}: test images (top) and their reconstructions",
                     width="stretch")
        if "prior" in grids:
            c2.image(str(grids["prior"]), caption=f"epoch {ep}: samples from the prior (the same z every epoch)")
        if len(epochs) > 1:
            with st.container(horizontal=True):
                for kind, label in (("prior", f"GIF: prior samples over {len(epochs)} epochs"),
                                    ("recon", "GIF: reconstructions over the epochs")):
                    # checked from the PNG headers first: a broken grid disables the button with the
                    # reason rather than handing the user an error message saved as .gif
                    why = gallery_problem(selected["folder"], kind)
                    st.download_button(label, (lambda k=kind: gallery_gif(selected["folder"], k)) if not why else b"",
                                       file_name=f"{selected['id']}-{kind}-epochs.gif", mime="image/gif",
                                       on_click="ignore", icon=":material/animation:", key=f"gallery_gif_{kind}",
                                       disabled=bool(why), help=why)
    st.code(log_tail(selected["folder"], 15) or "(no output yet)", language=None)


# The board polls the run folders every 2 s only while a job is queued or running. A timer left
# running also races a page switch: a tick that reaches the server as "Open in Explore" switches
# pages reruns a fragment the new page does not have, and Streamlit 1.67 then blanked the new
# page (seen in full test runs; streamlit/streamlit#9080 is the same race). With no job active,
# which is when a finished model is opened, there is no timer to race. (A queued job counts as
# active, so the board's own schedule() call need not come first.)
_live = _active(refresh())
st.fragment(run_every=2.0 if _live else None)(job_board)(_live)
