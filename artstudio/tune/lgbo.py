"""Samplers with a Gaussian-process model: `lgbo` (language-guided, deep kernel) and `gp` (plain).

Both are Optuna samplers (`BaseSampler`): the first `startup` trials are random; after that each
suggestion fits a GP to the finished trials, scores `candidates` configurations drawn from the
space (half uniformly, half perturbations of the best trials so far) by expected improvement, and
returns the best one.

`lgbo` follows the seed paper on language-guided Bayesian optimisation of LoRA hyper-parameters:

1. each configuration is *verbalised*: a shared prompt states the method, the task, what every
   hyper-parameter does and how they interact (the `help` sentences of the method's search space),
   followed by the configuration itself ("lr = 0.003 (high in its log range)");
2. a frozen language model (the backbone's own by default, or any local model folder) reads it;
   the shared prompt is encoded once and its KV cache reused for every configuration;
3. a **learnable token** reads the configuration's hidden states (a learned attention query over
   them, next to their mean pool), and a **linear projection** maps the result to a few dimensions;
4. a GP with a Matérn-5/2 kernel on that projection is fitted by maximising its marginal likelihood
   *jointly* with the token and the projection (a deep kernel).

Measured here, not assumed: back-propagating through the language model itself at every fit step
(a token inserted into the input) costs about 17 s per step for 20 texts on studio-tiny on two busy
CPU cores, so the learnable token works on the frozen hidden states instead (docs/tune.md).

`gp` is the same GP with an ARD kernel on normalised numeric features (log-scaled ranges mapped to
[0, 1], one-hot choices): the baseline `lgbo` has to beat, written with the same code so the only
difference is the features.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from typing import Any, Callable, Sequence

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger("artstudio.tune")

DTYPE = torch.float64


# --- the Gaussian process ------------------------------------------------------------------------------

def matern52(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(a, b).clamp_min(1e-12)
    s5 = math.sqrt(5.0) * d
    return (1 + s5 + s5**2 / 3) * torch.exp(-s5)


class GaussianProcess(torch.nn.Module):
    """Exact GP regression: constant mean, Matérn-5/2 kernel on `features(x)` / lengthscales, Gaussian noise.

    `features` is any module mapping the inputs to a (n, d) tensor; its parameters (if any) are
    fitted together with the kernel's by maximising the log marginal likelihood (a deep kernel).
    """

    def __init__(self, features: torch.nn.Module, dim: int, *, ard: bool = True):
        super().__init__()
        self.features = features
        self.log_ls = torch.nn.Parameter(torch.zeros(dim if ard else 1, dtype=DTYPE))
        self.log_scale = torch.nn.Parameter(torch.zeros((), dtype=DTYPE))
        self.log_noise = torch.nn.Parameter(torch.tensor(math.log(0.05), dtype=DTYPE))
        self.mean = torch.nn.Parameter(torch.zeros((), dtype=DTYPE))
        self._train: tuple | None = None

    def _k(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        ls = self.log_ls.exp()
        return self.log_scale.exp() * matern52(za / ls, zb / ls)

    def _noise(self) -> torch.Tensor:
        return self.log_noise.exp() + 1e-6

    def neg_mll(self, x: Any, y: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        n = y.shape[0]
        k = self._k(z, z) + self._noise() * torch.eye(n, dtype=DTYPE)
        chol = torch.linalg.cholesky(k)
        r = (y - self.mean).unsqueeze(1)
        alpha = torch.cholesky_solve(r, chol)
        nll = 0.5 * (r * alpha).sum() + torch.log(torch.diagonal(chol)).sum() + 0.5 * n * math.log(2 * math.pi)
        # Weak priors keep a fit on a handful of points sane: lengthscales near 1, noise not vanishing.
        prior = 0.5 * (self.log_ls**2).sum() / 4.0 + 0.5 * (self.log_noise - math.log(0.05)) ** 2 / 4.0
        return nll / n + prior / n

    def fit(self, x: Any, y: torch.Tensor, *, iters: int = 150, lr: float = 0.05, weight_decay: float = 0.0) -> "GaussianProcess":
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        best, best_state = float("inf"), None
        for _ in range(iters):
            opt.zero_grad()
            try:
                loss = self.neg_mll(x, y)
            except torch.linalg.LinAlgError:
                with torch.no_grad():
                    self.log_noise += 0.5
                continue
            if loss.item() < best:  # the parameters this loss was computed with, before the step
                best, best_state = loss.item(), copy.deepcopy(self.state_dict())
            loss.backward()
            opt.step()
        if best_state is not None:
            self.load_state_dict(best_state)
        with torch.no_grad():
            z = self.features(x)
            k = self._k(z, z) + self._noise() * torch.eye(len(y), dtype=DTYPE)
            chol = torch.linalg.cholesky(k)
            alpha = torch.cholesky_solve((y - self.mean).unsqueeze(1), chol)
        self._train = (z, chol, alpha)
        return self

    @torch.no_grad()
    def predict(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of f (without the noise) at `x`."""
        z_train, chol, alpha = self._train
        z = self.features(x)
        ks = self._k(z, z_train)
        mean = self.mean + (ks @ alpha).squeeze(1)
        v = torch.cholesky_solve(ks.T, chol)
        var = (self.log_scale.exp() - (ks * v.T).sum(1)).clamp_min(1e-12)
        return mean, var.sqrt()


def expected_improvement(mean: torch.Tensor, std: torch.Tensor, best: float, xi: float = 0.01) -> torch.Tensor:
    z = (mean - best - xi) / std
    normal = torch.distributions.Normal(torch.zeros((), dtype=mean.dtype), torch.ones((), dtype=mean.dtype))
    return (mean - best - xi) * normal.cdf(z) + std * normal.log_prob(z).exp()


class Fixed(torch.nn.Module):
    """Features that are given (the plain GP's numeric encoding): indexing a fixed tensor."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table.to(DTYPE))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx]


class DeepTextFeatures(torch.nn.Module):
    """Frozen hidden states of each configuration text -> [mean pool, learnable-token pool] -> linear projection.

    `states` is (n, L, d) with `mask` (n, L): the hidden states of every text's configuration part.
    They are first standardised and reduced to their `pca` leading principal directions (fixed,
    computed over every text, observed and candidate: no labels involved). Measured on the synthetic
    check of tests/test_tune.py: a projection learned on the full width of the hidden states (24-192
    dimensions) from 40 points overfits the marginal likelihood and predicts worse than the mean,
    while on the leading 8 directions it recovers the relevant direction. The learnable token is a
    query vector whose attention over a text's reduced states gives a second pooled vector; it and
    the projection are the kernel's trainable parameters.
    """

    def __init__(self, states: torch.Tensor, mask: torch.Tensor, out_dim: int = 2, seed: int = 0, pca: int = 8):
        super().__init__()
        states = states.to(DTYPE)
        mask = mask.to(DTYPE)
        flat = states[mask.bool()]
        mu, sd = flat.mean(0), flat.std(0).clamp_min(1e-6)
        z = (states - mu) / sd
        pooled = (z * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        centred = pooled - pooled.mean(0)
        q = max(1, min(pca, centred.shape[0] - 1, centred.shape[1]))
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        basis = v[:q].T  # (d, q): the directions along which the texts differ most
        reduced = z @ basis
        self.register_buffer("states", reduced)
        self.register_buffer("mask", mask)
        mean_pool = (reduced * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        self.register_buffer("pmu", mean_pool.mean(0))
        self.register_buffer("psd", mean_pool.std(0).clamp_min(1e-6) if len(states) > 1 else torch.ones(q, dtype=DTYPE))
        gen = torch.Generator().manual_seed(seed)
        self.token = torch.nn.Parameter(torch.randn(q, generator=gen, dtype=DTYPE) * 0.1)
        self.mix = torch.nn.Parameter(torch.tensor(-2.0, dtype=DTYPE))  # how much the token's pool adds
        self.proj = torch.nn.Linear(q, out_dim, bias=False, dtype=DTYPE)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(out_dim, q, generator=gen, dtype=DTYPE) * 0.3 / math.sqrt(q))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h, m = self.states[idx], self.mask[idx]
        mean_pool = (h * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)
        scores = (h @ self.token) / math.sqrt(h.shape[-1])
        weights = torch.softmax(scores.masked_fill(m == 0, -1e9), dim=1)
        token_pool = (weights.unsqueeze(-1) * h).sum(1)
        pooled = mean_pool + torch.sigmoid(self.mix) * (token_pool - mean_pool)
        return self.proj((pooled - self.pmu) / self.psd)


# --- configurations as numbers and as text -------------------------------------------------------------

def unit_value(dist: BaseDistribution, value: Any) -> float:
    """A numeric parameter mapped to [0, 1] (log scale where the distribution is log)."""
    lo, hi = float(dist.low), float(dist.high)
    if hi == lo:
        return 0.5
    if getattr(dist, "log", False):
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (float(value) - lo) / (hi - lo)


def numeric_features(space: dict[str, BaseDistribution], configs: Sequence[dict]) -> torch.Tensor:
    cols = []
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            for choice in dist.choices:
                cols.append([1.0 if c[name] == choice else 0.0 for c in configs])
        else:
            cols.append([unit_value(dist, c[name]) for c in configs])
    return torch.tensor(cols, dtype=DTYPE).T


def _level(u: float) -> str:
    return "very low" if u < 0.15 else "low" if u < 0.4 else "middle" if u < 0.6 else "high" if u < 0.85 else "very high"


def verbalise(space: dict[str, BaseDistribution], helps: dict[str, str], header: str) -> str:
    """The shared part of every configuration's text: the method, the task, what each knob does."""
    lines = [header, "The hyper-parameters, what each does and how they interact:"]
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            rng = "one of " + ", ".join(map(str, dist.choices))
        else:
            rng = f"from {dist.low:g} to {dist.high:g}" + (" on a log scale" if getattr(dist, "log", False) else "")
        lines.append(f"- {name} ({rng}): {helps.get(name, '')}".rstrip(": "))
    lines.append("This configuration:")
    return "\n".join(lines) + "\n"


def verbalise_config(space: dict[str, BaseDistribution], config: dict) -> str:
    parts = []
    for name, dist in space.items():
        value = config[name]
        if isinstance(dist, CategoricalDistribution):
            parts.append(f"{name} = {value}")
        else:
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            parts.append(f"{name} = {shown} ({_level(unit_value(dist, value))} in its range)")
    return "; ".join(parts) + "."


# --- the frozen text encoder ---------------------------------------------------------------------------

class TextEncoder:
    """A frozen language model that returns the hidden states of texts that share one prefix.

    The prefix (the shared description) runs once; its KV cache is repeated for each batch of
    configuration texts, so a suggestion costs one short forward pass per configuration.
    Results are cached by text.
    """

    def __init__(self, language_model: torch.nn.Module, embeddings: torch.nn.Module, tokenizer, device="cpu",
                 batch_size: int = 32):
        self.lm, self.embed, self.tokenizer = language_model.eval(), embeddings, tokenizer
        self.device, self.batch_size = device, batch_size
        params = inspect.signature(self.lm.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._prefix: tuple[str, Any, int] | None = None
        self._memo: dict[str, torch.Tensor] = {}

    @classmethod
    def from_backbone(cls, backbone) -> "TextEncoder":
        return cls(_language_model(backbone.model), backbone.input_embeddings(), backbone.tokenizer, backbone.device)

    @classmethod
    def from_folder(cls, path: str, device: str = "cpu") -> "TextEncoder":
        from transformers import AutoModel, AutoTokenizer

        from ..errors import ModelLoadError

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path).to(device).eval()
        except Exception as err:  # noqa: BLE001 - any loading failure is the user's path
            raise ModelLoadError(f"--encoder {path}: cannot load a language model from it ({err}); expected a local "
                                 "model folder with config.json, weights and a tokenizer") from None
        for p in model.parameters():
            p.requires_grad_(False)
        return cls(_language_model(model), model.get_input_embeddings(), tokenizer, device)

    def _ids(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    @torch.no_grad()
    def encode(self, prefix: str, texts: Sequence[str]) -> list[torch.Tensor]:
        """Last-layer hidden states (L_i, d) of each text read after `prefix`."""
        todo = [t for t in dict.fromkeys(texts) if (prefix, t) not in self._memo]
        if todo:
            if self._prefix is None or self._prefix[0] != prefix:
                ids = self._ids(prefix).unsqueeze(0).to(self.device)
                out = self.lm(inputs_embeds=self.embed(ids), use_cache=True)
                cached = out.cache if "cache" in getattr(out, "keys", lambda: ())() else getattr(out, "past_key_values", None)
                self._prefix = (prefix, cached, ids.shape[1])
            for i in range(0, len(todo), self.batch_size):
                chunk = todo[i:i + self.batch_size]
                for text, h in zip(chunk, self._encode_batch(prefix, chunk)):
                    self._memo[(prefix, text)] = h.float().cpu()
        return [self._memo[(prefix, t)] for t in texts]

    def _encode_batch(self, prefix: str, texts: list[str]) -> list[torch.Tensor]:
        ids = [self._ids(t) for t in texts]
        width = max(len(x) for x in ids)
        pad = torch.zeros(len(ids), width, dtype=torch.long)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for j, x in enumerate(ids):
            pad[j, :len(x)], mask[j, :len(x)] = x, 1
        pad, mask = pad.to(self.device), mask.to(self.device)
        _, cache, n_prefix = self._prefix
        try:
            if cache is None:
                raise RuntimeError("no cache")
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(ids))
            full_mask = torch.cat([torch.ones(len(ids), n_prefix, dtype=torch.long, device=self.device), mask], 1)
            hidden = self.lm(inputs_embeds=self.embed(pad), attention_mask=full_mask,
                             **{self._cache_kwarg: batch_cache}).last_hidden_state
        except Exception as err:  # noqa: BLE001 - a model whose cache cannot be repeated: read the whole text
            log.debug("prefix cache unavailable (%s); encoding whole texts", err)
            pre = self._ids(prefix).to(self.device).expand(len(ids), -1)
            full_mask = torch.cat([torch.ones_like(pre), mask], 1)
            hidden = self.lm(inputs_embeds=self.embed(torch.cat([pre, pad], 1)),
                             attention_mask=full_mask).last_hidden_state[:, n_prefix:]
        return [hidden[j, :len(x)] for j, x in enumerate(ids)]


def _language_model(model: torch.nn.Module) -> torch.nn.Module:
    """The text decoder of a vision-language model (or the model itself for a plain language model)."""
    for path in ("model.language_model", "language_model", "model"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.Module) and hasattr(obj, "forward") and "inputs_embeds" in inspect.signature(obj.forward).parameters:
            return obj
    return model


# --- the Optuna samplers -------------------------------------------------------------------------------

class ModelSampler(BaseSampler):
    """Random start, then a GP + expected improvement over sampled candidate configurations."""

    def __init__(self, space: dict[str, BaseDistribution], *, startup: int = 5, candidates: int = 128,
                 seed: int | None = None, fit_iters: int = 150):
        self.space = dict(space)
        self.startup, self.n_candidates, self.fit_iters = startup, candidates, fit_iters
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)
        self.last_fit: dict | None = None

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(self, study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None and all(n in t.params for n in self.space)]
        if len(done) < self.startup:
            return {}
        observed = [{n: t.params[n] for n in self.space} for t in done]
        values = np.array([t.value for t in done], dtype=float)
        if study.direction == optuna.study.StudyDirection.MINIMIZE:
            values = -values
        seen = {_key(c) for c in observed}
        pending = {_key({n: t.params.get(n) for n in self.space})
                   for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number != trial.number}
        cands = [c for c in self.candidates(observed, values) if _key(c) not in seen | pending]
        if not cands:
            return {}
        choice = self.choose(observed, values, cands)
        return cands[choice]

    def candidates(self, observed: list[dict], values: np.ndarray) -> list[dict]:
        """Half uniform draws from the space, half perturbations of the five best configurations."""
        n = self.n_candidates
        out = [self._draw() for _ in range(n - n // 2)]
        top = [observed[i] for i in np.argsort(-values)[:5]]
        for _ in range(n // 2):
            out.append(self._perturb(top[self._rng.integers(len(top))]))
        unique = {}
        for c in out:
            unique.setdefault(_key(c), c)
        return list(unique.values())

    def _draw(self) -> dict:
        return {n: _draw_one(self._rng, d) for n, d in self.space.items()}

    def _perturb(self, base: dict) -> dict:
        out = dict(base)
        for n, d in self.space.items():
            if self._rng.random() > 0.5:
                continue
            if isinstance(d, CategoricalDistribution):
                out[n] = d.choices[self._rng.integers(len(d.choices))]
            else:
                u = min(1.0, max(0.0, unit_value(d, base[n]) + self._rng.normal(0, 0.15)))
                out[n] = _from_unit(d, u)
        return out

    def choose(self, observed: list[dict], values: np.ndarray, cands: list[dict]) -> int:
        y = torch.tensor(values, dtype=DTYPE)
        std = y.std() if len(y) > 1 and y.std() > 0 else torch.tensor(1.0, dtype=DTYPE)
        y = (y - y.mean()) / std
        torch.manual_seed(0 if self._seed is None else self._seed + len(observed))
        gp = self.model(observed, cands)
        n_obs = len(observed)
        gp.fit(torch.arange(n_obs), y, iters=self.fit_iters)
        mean, sd = gp.predict(torch.arange(n_obs, n_obs + len(cands)))
        ei = expected_improvement(mean, sd, float(y.max()))
        best = int(torch.argmax(ei))
        self.last_fit = {"n": n_obs, "ei": float(ei[best]), "mean": float(mean[best]), "sd": float(sd[best])}
        return best

    def model(self, observed: list[dict], cands: list[dict]) -> GaussianProcess:
        raise NotImplementedError


class PlainGPSampler(ModelSampler):
    """`gp`: ARD Matérn-5/2 GP on normalised numeric features (log ranges to [0, 1], one-hot choices)."""

    def model(self, observed, cands):
        x = numeric_features(self.space, observed + cands)
        return GaussianProcess(Fixed(x), x.shape[1], ard=True)


class LGBOSampler(ModelSampler):
    """`lgbo`: the configuration as text, read by a frozen language model; a deep-kernel GP on top."""

    def __init__(self, space, encoder: TextEncoder | Callable[[], TextEncoder], *, helps: dict[str, str] | None = None,
                 header: str = "", out_dim: int = 2, **kw):
        super().__init__(space, **kw)
        self._encoder = encoder
        self.helps = helps or {}
        self.prefix = verbalise(self.space, self.helps, header or "Fine-tuning a frozen model.")
        self.out_dim = out_dim

    @property
    def encoder(self) -> TextEncoder:
        if callable(self._encoder) and not isinstance(self._encoder, TextEncoder):
            self._encoder = self._encoder()  # built on first use: random start-up trials need no model
        return self._encoder

    def texts(self, configs: Sequence[dict]) -> list[str]:
        return [verbalise_config(self.space, c) for c in configs]

    def model(self, observed, cands):
        states = self.encoder.encode(self.prefix, self.texts(observed + cands))
        width = max(h.shape[0] for h in states)
        padded = torch.zeros(len(states), width, states[0].shape[1])
        mask = torch.zeros(len(states), width)
        for i, h in enumerate(states):
            padded[i, :h.shape[0]], mask[i, :h.shape[0]] = h, 1
        features = DeepTextFeatures(padded, mask, out_dim=self.out_dim, seed=self._seed or 0)
        return GaussianProcess(features, self.out_dim, ard=False)


def _key(config: dict) -> tuple:
    return tuple(sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in config.items()))


def _draw_one(rng: np.random.Generator, d: BaseDistribution) -> Any:
    if isinstance(d, CategoricalDistribution):
        return d.choices[rng.integers(len(d.choices))]
    return _from_unit(d, float(rng.random()))


def _from_unit(d: BaseDistribution, u: float) -> Any:
    lo, hi = float(d.low), float(d.high)
    if getattr(d, "log", False):
        v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        v = lo + u * (hi - lo)
    if isinstance(d, IntDistribution):
        step = d.step or 1
        v = int(round((v - lo) / step)) * step + int(lo)
        return int(min(max(v, d.low), d.high))
    return float(min(max(v, lo), hi))


def make_sampler(name: str, space: dict[str, BaseDistribution], *, seed: int = 0, startup: int = 5,
                 candidates: int = 128, encoder: Callable[[], TextEncoder] | TextEncoder | None = None,
                 helps: dict[str, str] | None = None, header: str = "") -> BaseSampler:
    from ..errors import ConfigError

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return PlainGPSampler(space, startup=startup, candidates=candidates, seed=seed)
    if name == "lgbo":
        if encoder is None:
            raise ConfigError("the lgbo sampler needs a text encoder (the backbone's language model or --encoder PATH)")
        return LGBOSampler(space, encoder, helps=helps, header=header, startup=startup, candidates=candidates, seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; choose one of lgbo, gp, tpe, random")
