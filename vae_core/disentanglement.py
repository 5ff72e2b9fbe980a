"""Disentanglement metrics: how well do single code dimensions track single ground-truth factors?

Every metric here follows disentanglement_lib (Locatello et al. 2019, "Challenging
Common Assumptions in the Unsupervised Learning of Disentangled Representations",
ICML; github.com/google-research/disentanglement_lib) for its protocol, sample counts
and discretisation: the numbers of its unsupervised study are the defaults below.
Like disentanglement_lib, a metric is a plain function of (ground-truth data,
representation) that returns a dict.

  data            a FactorData: K discrete factors with known sizes, a sampler of
                  factor rows (N, K) and a map from factor rows to observations
                  (float images (N, C, H, W) in [0, 1] for sprites_factor_data()).
  representation  a callable: observations -> codes, np.ndarray (N, D). For a VAE the
                  posterior mean, for an AE its code: representation_of(model).
  rng             a numpy Generator or an int seed (default 0): a metric with the same
                  seed, data and representation gives the same numbers every time.

The metrics and their protocols:

  beta_vae_score    Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with
                    a Constrained Variational Framework" (ICLR). A point: pick a factor
                    k at random, draw 64 pairs of factor rows that agree on k (and on
                    nothing else by design), encode both sides, average |z1 - z2| over
                    the 64 pairs: a D-vector in which the dimensions that code k should
                    be small. A logistic regression learns k from 10,000 such points and
                    is scored on 5,000 new ones. Keys: train_accuracy, eval_accuracy.
  factor_vae_score  Kim & Mnih 2018, "Disentangling by Factorising" (ICML). Each code
                    dimension is divided by its standard deviation over 10,000 random
                    observations; dimensions with a std under 0.05 are "collapsed" and
                    pruned. A point: fix factor k at one value across a batch of 64,
                    encode, and take the dimension whose normalised variance is least.
                    A majority-vote classifier (each dimension -> the factor it was most
                    often the least-varying dimension for) is built from 10,000 points
                    and scored on 5,000. Keys: train_accuracy, eval_accuracy,
                    num_active_dims. No active dimension at all scores 0.
  mig_score         Chen et al. 2018, "Isolating Sources of Disentanglement in
                    Variational Autoencoders" (NeurIPS). 10,000 (code, factor) samples;
                    each code dimension is discretised into 20 equal-width bins over its
                    own range (disentanglement_lib's _histogram_discretize); I(z_d; v_k)
                    by sklearn's mutual_info_score; MIG = mean over factors of the gap
                    between the largest and second-largest I(z_d; v_k), divided by
                    H(v_k). Key: mig.
  sap_score         Kumar et al. 2018, "Variational Inference of Disentangled Latent
                    Concepts from Unlabeled Observations" (ICLR). Discrete factors (as
                    disentanglement_lib's study: continuous_factors=False): for every
                    (dimension d, factor k) a LinearSVC(C=0.01, class_weight="balanced")
                    predicts v_k from z_d alone, trained on 10,000 samples and scored
                    (accuracy) on 5,000 others; SAP = mean over factors of the best
                    score minus the second best. Key: sap.
  dci_score         Eastwood & Williams 2018, "A Framework for the Quantitative
                    Evaluation of Disentangled Representations" (ICLR). One classifier
                    per factor on 10,000 samples gives a (D, K) importance matrix R.
                    Disentanglement = sum_d rho_d (1 - H_K(R[d, :])), rho_d = the share
                    of all importance on d; completeness = sum_k rho_k (1 - H_D(R[:, k]));
                    informativeness = classification accuracy, train and on 5,000 test
                    samples. Keys: disentanglement, completeness, informativeness_train,
                    informativeness_test, regressor.
                    regressor="gbt" (default) is disentanglement_lib's choice: sklearn's
                    GradientBoostingClassifier with its defaults, importance = its
                    feature_importances_. On sprites that is one 100-stage boosting
                    run per factor with one tree per class per stage (113 classes), i.e.
                    minutes on a small CPU, so two faster probes are offered and named
                    in the result: "lasso" (Eastwood & Williams' own linear choice: a
                    Lasso, alpha 0.02, from standardised codes to the standardised factor
                    index; importance = |coefficient|; accuracy of the prediction rounded
                    to the nearest index) and "random_forest" (10 bagged trees of depth
                    8 over all features; importance = feature_importances_). Numbers from
                    different regressors are not comparable.

mutual_information_matrix(codes, factors) is MIG's matrix I(z_d; v_k) / H(v_k), (D, K),
for heat maps. all_metrics() runs all five with one seed and returns one flat dict.

Where this departs from disentanglement_lib (so numbers agree in distribution, not
digit for digit):
  * numpy's Generator instead of RandomState, and the pairs/batches of BetaVAE and
    FactorVAE points are drawn for several points per representation call (same
    distribution, fewer calls). Each metric draws its own stream from the seed, as each
    of disentanglement_lib's evaluations starts from random_seed = 0; so MIG, SAP and
    DCI see the very same samples, and all_metrics encodes them once.
  * LogisticRegression is today's sklearn default (lbfgs, multinomial) with max_iter
    1000, not 2019's liblinear one-vs-rest default; LinearSVC and the trees get a fixed
    random_state so reruns agree.
  * FactorVAE's num_active_dims counts the active dimensions (disentanglement_lib
    reports the length of its boolean mask, i.e. always D). The pruning threshold is on
    the standard deviation, as disentanglement_lib's prune_dims does (threshold 0.05).
  * With a single code dimension MIG and SAP take the second-best score as 0 (where
    disentanglement_lib would fail), and a factor that takes one value in the sample
    contributes 0 to MIG instead of 0/0.

Sprites' orientation cannot be identified over its whole range (sprites.py: a square
looks alike a quarter turn on, and orientation 39 = 0), so, as on dSprites, no
representation reaches 1 on every metric.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from vae_core import VaeError

# disentanglement_lib's unsupervised-study settings (its metric_configs/*.gin)
BATCH_SIZE = 64               # BetaVAE and FactorVAE: observations per point
NUM_TRAIN = 10_000
NUM_EVAL = 5_000              # BetaVAE and FactorVAE
NUM_TEST = 5_000              # SAP and DCI
NUM_VARIANCE_ESTIMATE = 10_000
PRUNE_THRESHOLD = 0.05        # FactorVAE: a std under this is a collapsed dimension
NUM_BINS = 20                 # MIG: histogram bins per code dimension
SAP_C = 0.01
DCI_REGRESSORS = ("gbt", "lasso", "random_forest")
LASSO_ALPHA = 0.02

# Observations per call of the representation: enough for full batches on a CPU model,
# few enough that a call's colour sprites (48 KB of floats each) stay under 50 MB. It
# fixes how many BetaVAE/FactorVAE points are drawn at once, so it is part of the random
# stream: changing it changes the samples (not their distribution).
IMAGES_PER_CALL = 1024


# ---------------------------------------------------------------- ground-truth data

def _uniform_factors(sizes: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1).astype(np.int64)


@dataclass(frozen=True)
class FactorData:
    """Ground truth for the metrics: K independent discrete factors and how to observe them.

    observe(factors (N, K) int64, rng) -> observations the representation accepts (for
    images: float (N, C, H, W) in [0, 1]); it may use rng for observation noise.
    sampler(n, rng) -> factor rows (n, K); None draws each factor uniformly and
    independently, which is what every disentanglement_lib dataset does.
    """
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observe: Callable[[np.ndarray, np.random.Generator], Any]
    sampler: Callable[[int, np.random.Generator], np.ndarray] | None = None

    def __post_init__(self):
        object.__setattr__(self, "factor_names", tuple(self.factor_names))
        object.__setattr__(self, "factor_sizes", tuple(int(s) for s in self.factor_sizes))
        if len(self.factor_names) != len(self.factor_sizes) or not self.factor_sizes:
            raise VaeError("FactorData needs one name per factor size, and at least one factor.")
        if min(self.factor_sizes) < 2:
            raise VaeError("Every factor must take at least 2 values: a constant factor has nothing to disentangle.")

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.sampler is None:
            return _uniform_factors(self.factor_sizes, n, rng)
        return np.asarray(self.sampler(n, rng), dtype=np.int64)

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator):
        return self.observe(factors, rng)

    def sample(self, n: int, rng: np.random.Generator):
        """(factors (n, K), observations)."""
        factors = self.sample_factors(n, rng)
        return factors, self.sample_observations_from_factors(factors, rng)


def sprites_factor_data(colour: bool = False) -> FactorData:
    """The sprites grid (vae_core/sprites.py): shape, scale, orientation, x, y.

    Observations are float (N, 1, 64, 64), or (N, 3, 64, 64) with colour=True, in [0, 1].
    color-sprites fixes the colour per grid index (disentanglement_lib redraws it per
    sample), so colour here is noise that a factor row determines.
    """
    from vae_core import sprites
    from vae_core.data import to_float

    def observe(factors, rng):
        return to_float(sprites.render(factors, colour=colour))

    return FactorData(sprites.FACTOR_NAMES, sprites.FACTOR_SIZES, observe,
                      sampler=lambda n, rng: sprites.sample_factors(n, rng))


def representation_of(model, batch_size: int = 256) -> Callable[[Any], np.ndarray]:
    """A model -> representation: float images (N, C, H, W) -> np.ndarray (N, D) float64.

    The code is encode(x)[0]: the posterior mean for a VAE (mu, logvar), the code for an
    AE (z, None), as disentanglement_lib scores the mean. Runs in eval mode under
    no_grad, in batches, on the model's device; the model's mode is restored after.
    """
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    want = tuple(getattr(model, "image_shape", ()))

    def representation(x) -> np.ndarray:
        x = torch.as_tensor(x)
        if want and tuple(x.shape[1:]) != want:
            raise VaeError(f"This model takes images of shape {want}; the ground-truth data gives "
                           f"{tuple(x.shape[1:])}. Score a model trained on that data.")
        was_training = model.training
        model.eval()
        out = []
        try:
            with torch.no_grad():
                for i in range(0, len(x), batch_size):
                    code = model.encode(x[i:i + batch_size].to(device, torch.float32))[0]
                    out.append(code.float().cpu().numpy())
        finally:
            model.train(was_training)
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, model.latent_dim))

    return representation


# ---------------------------------------------------------------- sampling codes

def _as_rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _seed_for_sklearn(rng: np.random.Generator) -> int:
    return int(rng.integers(2 ** 31 - 1))


def _encode(data: FactorData, representation, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observe factor rows and encode them, IMAGES_PER_CALL at a time -> codes (N, D) float64."""
    codes = []
    for i in range(0, len(factors), IMAGES_PER_CALL):
        chunk = factors[i:i + IMAGES_PER_CALL]
        z = representation(data.sample_observations_from_factors(chunk, rng))
        z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
        if z.ndim != 2 or len(z) != len(chunk):
            raise VaeError(f"A representation must map N observations to an (N, D) array; "
                           f"{len(chunk)} gave shape {z.shape}.")
        codes.append(z.astype(np.float64))
    return np.concatenate(codes)


def sample_codes(data: FactorData, representation, num: int, rng=0) -> tuple[np.ndarray, np.ndarray]:
    """num random (codes (num, D), factors (num, K)): disentanglement_lib's
    generate_batch_factor_code, the input of MIG, SAP and DCI."""
    if num < 2:
        raise VaeError(f"Need at least 2 samples, got {num}.")
    rng = _as_rng(rng)
    factors = data.sample_factors(num, rng)
    return _encode(data, representation, factors, rng), factors


def _check_codes(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or len(codes) < 2:
        raise VaeError(f"Codes must be (N, D) and factors (N, K) with the same N >= 2; "
                       f"got {codes.shape} and {factors.shape}.")
    if not np.isfinite(codes).all():
        raise VaeError("The codes hold NaN or infinite values.")
    if not np.issubdtype(factors.dtype, np.integer):
        raise VaeError("Factors must be integer value indices.")
    return codes, factors.astype(np.int64)


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column: largest minus second-largest entry (second = 0 when there is one row)."""
    ranked = np.sort(matrix, axis=0)[::-1]
    second = ranked[1] if len(ranked) > 1 else np.zeros(matrix.shape[1])
    return ranked[0] - second


# ---------------------------------------------------------------- BetaVAE score

def _beta_vae_points(data, representation, rng, batch_size, num_points):
    """num_points (feature (D,), held factor) pairs of the BetaVAE protocol."""
    features, labels = [], []
    per_call = max(1, IMAGES_PER_CALL // (2 * batch_size))
    for start in range(0, num_points, per_call):
        p = min(per_call, num_points - start)
        held = rng.integers(data.num_factors, size=p)          # the factor each point fixes
        f1 = data.sample_factors(p * batch_size, rng)
        f2 = data.sample_factors(p * batch_size, rng)
        rows, cols = np.arange(p * batch_size), np.repeat(held, batch_size)
        f2[rows, cols] = f1[rows, cols]                         # each pair agrees on that factor
        z1 = _encode(data, representation, f1, rng)
        z2 = _encode(data, representation, f2, rng)
        # Dimensions that code the held factor differ little within a pair: a linear
        # classifier can read the held factor off which coordinates are small.
        features.append(np.abs(z1 - z2).reshape(p, batch_size, -1).mean(axis=1))
        labels.append(held)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(data: FactorData, representation, rng=0, batch_size: int = BATCH_SIZE,
                   num_train: int = NUM_TRAIN, num_eval: int = NUM_EVAL) -> dict:
    """Higgins et al. 2017: accuracy of a linear classifier naming the held factor."""
    from sklearn.linear_model import LogisticRegression
    rng = _as_rng(rng)
    if batch_size < 1 or num_train < 2 or num_eval < 1:
        raise VaeError("BetaVAE score: batch_size >= 1, num_train >= 2 and num_eval >= 1.")
    x_train, y_train = _beta_vae_points(data, representation, rng, batch_size, num_train)
    if len(np.unique(y_train)) < 2:
        raise VaeError("BetaVAE score: every training point held the same factor; raise num_train.")
    model = LogisticRegression(max_iter=1000, random_state=_seed_for_sklearn(rng))
    model.fit(x_train, y_train)
    x_eval, y_eval = _beta_vae_points(data, representation, rng, batch_size, num_eval)
    return {"train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
            "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval))}


# ---------------------------------------------------------------- FactorVAE score

def _factor_vae_votes(data, representation, rng, batch_size, num_points, global_var, active):
    """(K, D) counts: how often fixing factor k made dimension d the least varying."""
    votes = np.zeros((data.num_factors, len(global_var)), dtype=np.int64)
    active_dims = np.flatnonzero(active)
    per_call = max(1, IMAGES_PER_CALL // batch_size)
    for start in range(0, num_points, per_call):
        p = min(per_call, num_points - start)
        held = rng.integers(data.num_factors, size=p)
        f = data.sample_factors(p * batch_size, rng).reshape(p, batch_size, -1)
        f[np.arange(p), :, held] = f[np.arange(p), 0, held][:, None]  # one value across each batch
        z = _encode(data, representation, f.reshape(p * batch_size, -1), rng).reshape(p, batch_size, -1)
        # Dividing by the global variance makes the argmin scale-free: a dimension is
        # "least varying" relative to how much it varies over the whole data.
        local = np.var(z[:, :, active_dims], axis=1, ddof=1) / global_var[active_dims]
        np.add.at(votes, (held, active_dims[np.argmin(local, axis=1)]), 1)
    return votes


def factor_vae_score(data: FactorData, representation, rng=0, batch_size: int = BATCH_SIZE,
                     num_train: int = NUM_TRAIN, num_eval: int = NUM_EVAL,
                     num_variance_estimate: int = NUM_VARIANCE_ESTIMATE,
                     prune_threshold: float = PRUNE_THRESHOLD) -> dict:
    """Kim & Mnih 2018: accuracy of a majority vote from least-varying dimension to factor."""
    rng = _as_rng(rng)
    if batch_size < 2 or num_train < 1 or num_eval < 1 or num_variance_estimate < 2:
        raise VaeError("FactorVAE score: batch_size >= 2, num_variance_estimate >= 2, counts >= 1.")
    codes, _ = sample_codes(data, representation, num_variance_estimate, rng)
    global_var = np.var(codes, axis=0, ddof=1)
    # A dimension collapsed to the prior is constant in its mean: it would always be the
    # least varying one and win every vote, so it is left out (threshold on the std).
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _factor_vae_votes(data, representation, rng, batch_size, num_train, global_var, active)
    classifier = np.argmax(train_votes, axis=0)      # dimension -> the factor it votes for most
    dims = np.arange(len(global_var))
    eval_votes = _factor_vae_votes(data, representation, rng, batch_size, num_eval, global_var, active)
    return {"train_accuracy": float(train_votes[classifier, dims].sum() / train_votes.sum()),
            "eval_accuracy": float(eval_votes[classifier, dims].sum() / eval_votes.sum()),
            "num_active_dims": int(active.sum())}


# ---------------------------------------------------------------- MIG

def discretize(codes, bins: int = NUM_BINS) -> np.ndarray:
    """Each column into `bins` equal-width bins over its own range: labels 1..bins.

    disentanglement_lib's _histogram_discretize: np.digitize against np.histogram's left
    edges. A constant column lands in one bin (np.histogram widens a zero range).
    """
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], bins)[1][:-1]
        out[:, d] = np.digitize(codes[:, d], edges)
    return out


def mutual_information_matrix(codes, factors, bins: int = NUM_BINS) -> np.ndarray:
    """(D, K): I(z_d; v_k) / H(v_k) in [0, 1], codes discretised into `bins` bins.

    1 means dimension d determines factor k (up to the binning); a factor that takes a
    single value in the sample has a column of 0. The estimate from N samples is biased
    upward by about (bins - 1)(|v_k| - 1) / 2N nats, so independent pairs read slightly
    above 0.
    """
    from sklearn.metrics import mutual_info_score
    codes, factors = _check_codes(codes, factors)
    z = discretize(codes, bins)
    mi = np.array([[mutual_info_score(factors[:, k], z[:, d]) for k in range(factors.shape[1])]
                   for d in range(z.shape[1])]).reshape(z.shape[1], factors.shape[1])
    entropy = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
    return np.divide(mi, entropy, out=np.zeros_like(mi), where=entropy > 0)


def mig_from_codes(codes, factors, bins: int = NUM_BINS, names=None) -> dict:
    """MIG of precomputed codes (N, D) and their factors (N, K); mig_per_factor: each
    factor's gap (which factors a model captures, which it spreads), keyed by `names`
    when given, else a list in factor order."""
    # The gap, not the top MI alone: a factor spread over two dimensions scores ~0 even
    # if each holds much information about it.
    gaps = [float(g) for g in _top_two_gap(mutual_information_matrix(codes, factors, bins))]
    return {"mig": float(np.mean(gaps)), "mig_per_factor": dict(zip(names, gaps)) if names else gaps}


def mig_score(data: FactorData, representation, rng=0, num_train: int = NUM_TRAIN,
              bins: int = NUM_BINS) -> dict:
    """Chen et al. 2018: mean over factors of the normalised gap between the top two I(z_d; v_k);
    mig_per_factor: each factor's gap by its name."""
    return mig_from_codes(*sample_codes(data, representation, num_train, _as_rng(rng)), bins=bins,
                          names=data.factor_names)


# ---------------------------------------------------------------- SAP

def sap_from_codes(codes, factors, codes_test, factors_test) -> dict:
    """SAP of precomputed train and test codes (discrete factors, as disentanglement_lib's study)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC
    import warnings
    codes, factors = _check_codes(codes, factors)
    codes_test, factors_test = _check_codes(codes_test, factors_test)
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    for d in range(codes.shape[1]):
        for k in range(factors.shape[1]):
            if len(np.unique(factors[:, k])) < 2:
                continue  # nothing to learn: this factor does not vary in the sample
            # One dimension at a time: the score asks how well z_d ALONE predicts v_k.
            clf = LinearSVC(C=SAP_C, class_weight="balanced", random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # a useless dimension need not converge
                clf.fit(codes[:, d:d + 1], factors[:, k])
            scores[d, k] = np.mean(clf.predict(codes_test[:, d:d + 1]) == factors_test[:, k])
    return {"sap": float(np.mean(_top_two_gap(scores)))}


def sap_score(data: FactorData, representation, rng=0, num_train: int = NUM_TRAIN,
              num_test: int = NUM_TEST) -> dict:
    """Kumar et al. 2018: mean over factors of the gap between the two best single-dimension predictors."""
    rng = _as_rng(rng)
    train = sample_codes(data, representation, num_train, rng)
    return sap_from_codes(*train, *sample_codes(data, representation, num_test, rng))


# ---------------------------------------------------------------- DCI

def _importance(regressor: str, x_train, y_train, x_test, y_test, seed: int):
    """(importance (D,), train accuracy, test accuracy) of one factor's probe."""
    if regressor == "lasso":
        from sklearn.linear_model import Lasso
        mean, std = x_train.mean(0), x_train.std(0)
        std[std == 0] = 1.0
        ym, ys = y_train.mean(), y_train.std() or 1.0
        model = Lasso(alpha=LASSO_ALPHA, random_state=seed).fit((x_train - mean) / std, (y_train - ym) / ys)
        lo, hi = y_train.min(), y_train.max()

        def predict(x):
            return np.clip(np.rint(model.predict((x - mean) / std) * ys + ym), lo, hi)
        return np.abs(model.coef_), np.mean(predict(x_train) == y_train), np.mean(predict(x_test) == y_test)
    if regressor == "gbt":
        from sklearn.ensemble import GradientBoostingClassifier
        model = GradientBoostingClassifier(random_state=seed)
    else:
        from sklearn.ensemble import RandomForestClassifier
        model = RandomForestClassifier(n_estimators=10, max_depth=8, max_features=None, random_state=seed)
    if len(np.unique(y_train)) < 2:  # trees refuse one class; the importance is nil
        return np.zeros(x_train.shape[1]), np.mean(y_train == y_train[0]), np.mean(y_test == y_train[0])
    model.fit(x_train, y_train)
    return (np.abs(model.feature_importances_), np.mean(model.predict(x_train) == y_train),
            np.mean(model.predict(x_test) == y_test))


def _weighted_one_minus_entropy(importance: np.ndarray) -> float:
    """sum over rows of (row's share of all importance) x (1 - entropy of the row, base = row length).

    disentanglement_lib's disentanglement (rows = codes) and, transposed, completeness.
    """
    from scipy.stats import entropy
    n = importance.shape[1]
    # 1e-11 as disentanglement_lib: a row of zeros reads as uniform (score 0), not 0/0
    per_row = 1.0 - entropy(importance.T + 1e-11, base=n) if n > 1 else np.ones(len(importance))
    total = importance.sum()
    weight = importance.sum(axis=1) / total if total > 0 else np.full(len(importance), 1 / len(importance))
    return float(np.sum(per_row * weight))


def dci_from_codes(codes, factors, codes_test, factors_test, regressor: str = "gbt", rng=0) -> dict:
    """DCI of precomputed train and test codes. regressor: gbt (disentanglement_lib), lasso, random_forest."""
    if regressor not in DCI_REGRESSORS:
        raise VaeError(f"Unknown DCI regressor {regressor!r}: choose {', '.join(DCI_REGRESSORS)}.")
    codes, factors = _check_codes(codes, factors)
    codes_test, factors_test = _check_codes(codes_test, factors_test)
    seed = _seed_for_sklearn(_as_rng(rng))
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    train_acc, test_acc = [], []
    for k in range(factors.shape[1]):
        importance[:, k], a, b = _importance(regressor, codes, factors[:, k], codes_test, factors_test[:, k], seed)
        train_acc.append(a)
        test_acc.append(b)
    return {"disentanglement": _weighted_one_minus_entropy(importance),    # each code -> one factor
            "completeness": _weighted_one_minus_entropy(importance.T),     # each factor -> one code
            "informativeness_train": float(np.mean(train_acc)),
            "informativeness_test": float(np.mean(test_acc)),
            "regressor": regressor}


def dci_score(data: FactorData, representation, rng=0, num_train: int = NUM_TRAIN,
              num_test: int = NUM_TEST, regressor: str = "gbt") -> dict:
    """Eastwood & Williams 2018: disentanglement, completeness, informativeness from an importance matrix."""
    if regressor not in DCI_REGRESSORS:  # before minutes of encoding, not after
        raise VaeError(f"Unknown DCI regressor {regressor!r}: choose {', '.join(DCI_REGRESSORS)}.")
    rng = _as_rng(rng)
    train = sample_codes(data, representation, num_train, rng)
    test = sample_codes(data, representation, num_test, rng)
    return dci_from_codes(*train, *test, regressor=regressor, rng=rng)


# ---------------------------------------------------------------- all of them

def all_metrics(data: FactorData, representation, rng_seed: int = 0, *, batch_size: int = BATCH_SIZE,
                num_train: int = NUM_TRAIN, num_eval: int = NUM_EVAL, num_test: int = NUM_TEST,
                num_variance_estimate: int = NUM_VARIANCE_ESTIMATE, bins: int = NUM_BINS,
                dci_regressor: str = "gbt") -> dict:
    """Every metric with seed rng_seed, in one flat dict with prefixed keys and the counts used.

    Each metric starts its own stream from rng_seed, so every number equals what the
    metric's own function gives with that seed. MIG, SAP and DCI would draw the same
    codes from it, so they are encoded once and shared (SAP draws nothing more, so DCI's
    classifier seed comes from the stream where dci_score would take it).
    """
    if dci_regressor not in DCI_REGRESSORS:
        raise VaeError(f"Unknown DCI regressor {dci_regressor!r}: choose {', '.join(DCI_REGRESSORS)}.")
    out: dict = {}
    for key, value in beta_vae_score(data, representation, rng_seed, batch_size, num_train, num_eval).items():
        out[f"beta_vae_{key}"] = value
    for key, value in factor_vae_score(data, representation, rng_seed, batch_size, num_train, num_eval,
                                       num_variance_estimate).items():
        out[f"factor_vae_{key}"] = value
    rng = np.random.default_rng(rng_seed)
    train = sample_codes(data, representation, num_train, rng)
    test = sample_codes(data, representation, num_test, rng)
    out.update(mig_from_codes(*train, bins=bins, names=data.factor_names))
    out.update(sap_from_codes(*train, *test))
    for key, value in dci_from_codes(*train, *test, regressor=dci_regressor, rng=rng).items():
        out[f"dci_{key}"] = value
    out.update({"rng_seed": rng_seed, "batch_size": batch_size, "num_train": num_train, "num_eval": num_eval,
                "num_test": num_test, "num_variance_estimate": num_variance_estimate, "bins": bins,
                "prune_threshold": PRUNE_THRESHOLD})
    return out
