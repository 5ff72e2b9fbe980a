"""Learn: the ELBO run in front of you on 1-D data (vae_core.toy), trained in the page.

Every slider retrains the linear VAE from scratch, together with the collapse check's β
sweep (ten models in one batched run, vae_core.toy.train_toys); the figures and captions
are that run's.
"""
import time

import numpy as np
import streamlit as st

from ui_common import ensure_app
from vae_core.plots import (toy_collapse_figure, toy_curves_figure, toy_data_figure, toy_posterior_figure,
                            toy_reparam_figure)
from vae_core.toy import ToyConfig, posterior, prior_samples, train_toys

SWEEP = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)

ensure_app()  # a first request straight to /learn still runs through app.py (navigation, picker)
st.title("Learn")
st.caption("A VAE with one latent number: a linear Gaussian encoder q(z|x) = N(a·x + b, σ(x)²), a linear decoder "
           "p(x|z) = N(w·z + v, σ²) with σ² set here, prior N(0, 1), trained by full-batch Adam on the β-ELBO "
           "E_q[log p(x|z)] − β·KL(q(z|x) ‖ p(z)). The data: two Gaussians, ±separation apart.")

c1, c2, c3, c4, c5 = st.columns(5)
beta = c1.slider("β", 0.0, 8.0, 1.0, 0.25, key="learn_beta", help="weight of the KL term (1: the ELBO)")
dvar = c2.select_slider("decoder variance σ²", [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0], 1.0, key="learn_dvar",
                        help="the fixed noise of p(x|z): a larger σ² makes reconstruction cheaper to give up")
sep = c3.slider("separation", 0.5, 4.0, 2.0, 0.25, key="learn_sep", help="the modes sit at ±separation")
n = c4.select_slider("points", [200, 500, 1000, 2000], 1000, key="learn_n")
seed = int(c5.number_input("seed", 0, 9999, 0, key="learn_seed"))
cfg = ToyConfig(n=n, sep=sep, seed=seed, beta=beta, decoder_var=dvar)


@st.cache_resource(show_spinner=False, max_entries=64)
def trained(cfg: ToyConfig):
    """This β's model and the collapse check's sweep, trained side by side in one run."""
    t = time.perf_counter()
    results = train_toys(cfg, [cfg.beta, *SWEEP])
    return results, time.perf_counter() - t


results, seconds = trained(cfg)
result = results[0]
m = result.metrics
x = result.x
s2 = float(np.var(x))
generated = prior_samples(result)

k1, k2, k3, k4, k5 = st.columns(5)
k1.metric("ELBO (β = 1)", f"{m['elbo']:.3f}", help="nats per point, at the end of training")
k2.metric("reconstruction", f"{m['recon']:.3f}", help="−log p(x|z), nats per point")
k3.metric("KL", f"{m['kl']:.3f}")
k4.metric("I(x; z)", f"{m['mi']:.3f}", help="mutual information under q(z|x) and the data (nats; at most log n)")
k5.metric("trained in", f"{seconds:.2f} s", help=f"{cfg.steps} full-batch Adam steps on this machine, for this β "
                                                  f"and the {len(SWEEP)} of the sweep below together")

left, right = st.columns(2)
with left:
    st.markdown("**Data and what the model generates**")
    st.plotly_chart(toy_data_figure(x, generated), key="learn_data")
    st.caption(f"A linear decoder turns N(0, 1) into one Gaussian: decoded prior samples have mean "
               f"{generated.mean():+.2f} and variance {generated.var():.2f} against the data's {x.mean():+.2f} and "
               f"{s2:.2f}, and cannot show the two modes.")
with right:
    st.markdown("**Posteriors q(z|x) against the prior**")
    xs = np.array([-sep, 0.0, sep])
    mus, sigmas = posterior(result, xs)
    st.plotly_chart(toy_posterior_figure(xs, mus, sigmas), key="learn_posterior")
    st.caption(f"q(z|x) for x = −{sep:g}, 0, +{sep:g}: means {', '.join(f'{v:+.2f}' for v in mus)}, σ "
               f"{', '.join(f'{v:.2f}' for v in sigmas)}. The further they sit from N(0, 1), the more z says about x.")

left, right = st.columns(2)
with left:
    st.markdown("**Training curves**")
    st.plotly_chart(toy_curves_figure(result.history), key="learn_curves")
    st.caption(f"Over {cfg.steps} steps the KL went from {result.history['kl'][0]:.2f} to {m['kl']:.3f} nats and "
               f"the reconstruction from {result.history['recon'][0]:.2f} to {m['recon']:.3f}.")
with right:
    st.markdown("**The reparameterisation z = μ + σ·ε**")
    eps = np.random.default_rng(seed).standard_normal(12)
    mu0, sd0 = posterior(result, [sep])
    st.plotly_chart(toy_reparam_figure(float(mu0[0]), float(sd0[0]), eps), key="learn_reparam")
    st.caption(f"For x = +{sep:g}: twelve ε ~ N(0, 1) become z = {mu0[0]:+.2f} + {sd0[0]:.2f}·ε. Gradients reach "
               f"μ and σ through this sum, which is why the encoder can learn from a sampled z.")

st.markdown("**Collapse check**")
left, right = st.columns(2)
with left:
    sweep = [r.metrics for r in results[1:]]
    st.plotly_chart(toy_collapse_figure(SWEEP, [r["kl"] for r in sweep], [r["mi"] for r in sweep], beta),
                    key="learn_collapse")
with right:
    gap = m["recon_shuffled"] - m["recon"]
    collapsed = m["kl"] < 0.01
    st.markdown(f"- KL **{m['kl']:.3f}** nats, I(x; z) **{m['mi']:.3f}** nats\n"
                f"- shuffled-z ablation: reconstruction **{m['recon']:.3f}** with each point's own z, "
                f"**{m['recon_shuffled']:.3f}** with another point's z (gap {gap:.3f})\n"
                f"- data variance s² = {s2:.2f}; β·σ² = {beta * dvar:.2f}")
    if collapsed:
        st.warning(f"Collapsed: q(z|x) is the prior for every x (KL {m['kl']:.4f}) and the decoder ignores z "
                   f"(the shuffled-z gap is {gap:.3f}). For this linear model that happens once β·σ² passes "
                   f"the data variance s² ≈ {s2:.2f}.", icon=":material/warning:")
    else:
        st.caption(f"z is in use: decoding another point's z costs {gap:.2f} nats more. The linear model keeps z "
                   f"while s² > β·σ² ({s2:.2f} > {beta * dvar:.2f}); the sweep on the left shows KL and I(x; z) "
                   f"falling to 0 as β passes {s2 / dvar:.2f}.")
