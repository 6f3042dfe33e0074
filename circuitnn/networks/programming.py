"""Weight programming on four PCM devices per weight, and its optimisation by differential evolution.

Unit cell (Mackin et al., Nat. Commun. 2022; docs/reference/dgc-drift-programming.md §3):

    W = F·(G+ − G−) + (g+ − g−)          MSP (G±, significance F) and LSP (g±)

Conductances here are normalised to the device window (ĝ = g/g_max ∈ [0, 1]); a weight is normalised
to its tile's max|W| (w ∈ [−1, 1]). A *strategy* maps |w| to the four conductances by piecewise-linear
tables over a grid of |w| (negative weights swap + and −), with ``full`` = the conductance-unit weight
of |w| = 1, so the read-back weight is sign(w)·(F(G+ − G−) + (g+ − g−))/full.

Parameterisation (re-implemented from the description of aihwkit's WeightProgrammingOptimizer,
§3.2; symmetric mode, two pairs): ``n_points`` = 6 grid points |w| = 0, 0.2, …, 1; at each, three
numbers in [0, 1]: (u1) the MSP's share of the target D = k_w·(F + 1)·|w| within the range the
LSP can still complete, [max(D − 1, −F), min(D + 1, F)]; (u2) G+ along its "equipotential line"
[max(ΔG, 0), 1 + min(ΔG, 0)], G− = G+ − ΔG; (u3) the same for g±. Plus F ∈ [0.1, 5] and the
weight scale k_w ∈ [0.05, 1] (the fraction of the cell's full range a max weight uses): 20
dimensions. Every decoded conductance lies in [0, 1] by construction, and linear interpolation
between grid points keeps it there (tests check the bounds).

Objective: the time-averaged normalised weight error after drift and global drift compensation
(TNMSE, §3.2): mean over times and test weights of [A·(α_t W̃(t) − w)]², A = 10, with programming
noise, ν and read noise of the PCM model (``devices/pcm.py``) drawn for every device; α_t = mean|W̃|
right after programming / mean|W̃(t)| (the mean|W| read-out of ``networks/devices.py``). The test
weights are quantiles of the network's own normalised weights (the weight density, κ_j of Mackin et
al.), shuffled.

Our choices where the sources are silent (config values, ``ProgrammingSearchConfig``):
* Common random numbers: one fixed set of standard normals (programming, ν, read) is used for every
  candidate and generation, so DE compares strategies on the same noise and the objective is a
  deterministic function (smooth enough for the final polish); the reported errors use fresh draws.
* DE settings follow aihwkit (best1bin, mutation 0.1, recombination 0.3, Latin-hypercube init,
  polish; ``start_from_dual_pair`` puts the baseline's own parameters in the initial population,
  off by default: with mutation 0.1 the population then collapses onto it), but a smaller population multiplier and fewer generations than its 100/200, and fewer test
  weights than its 512×20: a 2-core machine, not a cluster.
* The GDC reference is read right after programming with programming noise only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..devices import pcm
from ..devices.pcm import PcmParams
from ..errors import ConfigError
from ..validation import check_range

ERROR_AMPLIFICATION = 10.0
F_RANGE = (0.1, 5.0)
WEIGHT_SCALE_RANGE = (0.05, 1.0)
# 1 s, 1 min, 1 h, 1 day, 1 month, 1 year: aihwkit's example time points (§3.2).
OBJECTIVE_TIMES_S = (1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)


@dataclass(frozen=True)
class Strategy:
    """A programming strategy: ``grid`` (n,) of |w| in [0, 1]; ``table`` (4, n) normalised conductances
    (G+, G−, g+, g−) at those points; ``f`` the MSP significance F; ``full`` the conductance-unit weight
    of |w| = 1 (F(G+ − G−) + (g+ − g−) there)."""

    name: str
    grid: np.ndarray
    table: np.ndarray
    f: float
    full: float

    def conductances(self, w) -> np.ndarray:
        """Normalised conductances (4, *w.shape) of (G+, G−, g+, g−) for weights ``w`` in [−1, 1]."""
        w = np.asarray(w, dtype=float)
        a = np.minimum(np.abs(w), 1.0)
        table = np.stack([np.interp(a, self.grid, row) for row in self.table])
        negative = w < 0
        table[0], table[1] = np.where(negative, table[1], table[0]), np.where(negative, table[0], table[1])
        table[2], table[3] = np.where(negative, table[3], table[2]), np.where(negative, table[2], table[3])
        return table

    def weights(self, g) -> np.ndarray:
        """Weights read back from conductances ``g`` (4, ...): (F(G+ − G−) + (g+ − g−))/full."""
        return (self.f * (g[0] - g[1]) + (g[2] - g[3])) / self.full


def single_pair() -> Strategy:
    """One pair: the active device carries |w| over the whole window, the other sits at 0 (§4.1)."""
    grid = np.array([0.0, 1.0])
    table = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    return Strategy("single pair", grid, table, 1.0, 1.0)


def dual_pair() -> Strategy:
    """Two pairs with F = 1 (aihwkit's DualPairConductanceConverter, f = [1, 1]): the least significant
    pair fills first (|w| ≤ 1/2), the other takes the rest, so a small weight sees one device's error."""
    grid = np.array([0.0, 0.5, 1.0])
    table = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    return Strategy("dual pair", grid, table, 1.0, 2.0)


# ---- the search space --------------------------------------------------------------------------------------
def n_parameters(n_points: int) -> int:
    return 3 * n_points + 2


def decode(params, n_points: int = 6):
    """Decode parameters in [0, 1] (n_parameters, P) → (tables (P, 4, n_points), F (P,), full (P,)).

    Layout: 3 per grid point (u1, u2, u3 of the module docstring), then F's and k_w's positions in
    their ranges. Vectorised over the P candidates of a DE population.
    """
    u = np.asarray(params, dtype=float)
    if u.ndim == 1:
        u = u[:, None]
    if u.shape[0] != n_parameters(n_points):
        raise ConfigError("programming.params", f"shape {u.shape}", f"({n_parameters(n_points)}, P)")
    u = np.clip(u, 0.0, 1.0)
    P = u.shape[1]
    f = F_RANGE[0] + u[-2] * (F_RANGE[1] - F_RANGE[0])
    k_w = WEIGHT_SCALE_RANGE[0] + u[-1] * (WEIGHT_SCALE_RANGE[1] - WEIGHT_SCALE_RANGE[0])
    full = k_w * (f + 1.0)
    grid = np.linspace(0.0, 1.0, n_points)
    tables = np.empty((P, 4, n_points))
    for p, w in enumerate(grid):
        u1, u2, u3 = u[3 * p], u[3 * p + 1], u[3 * p + 2]
        target = full * w
        low, high = np.maximum(target - 1.0, -f), np.minimum(target + 1.0, f)
        msp = low + u1 * (high - low)
        d_big = msp / f
        d_small = np.clip(target - msp, -1.0, 1.0)
        g_plus = np.maximum(d_big, 0.0) + u2 * (1.0 - np.abs(d_big))
        s_plus = np.maximum(d_small, 0.0) + u3 * (1.0 - np.abs(d_small))
        tables[:, 0, p], tables[:, 1, p] = g_plus, g_plus - d_big
        tables[:, 2, p], tables[:, 3, p] = s_plus, s_plus - d_small
    return np.clip(tables, 0.0, 1.0), f, full


def dual_pair_params(n_points: int = 6) -> np.ndarray:
    """The parameters (n_parameters,) whose decoding is the dual pair (F = 1, k_w = 1, LSP first):
    where the search starts from, so it can only improve on the baseline it is compared with."""
    u = np.zeros(n_parameters(n_points))
    for p, w in enumerate(np.linspace(0.0, 1.0, n_points)):
        target = 2.0 * w
        msp = max(target - 1.0, 0.0)
        low, high = max(target - 1.0, -1.0), min(target + 1.0, 1.0)
        u[3 * p] = (msp - low) / (high - low) if high > low else 0.0   # at k_w = 1, |w| = 1 the range is a point
    u[-2] = (1.0 - F_RANGE[0]) / (F_RANGE[1] - F_RANGE[0])
    u[-1] = 1.0
    return u


def strategy_from_params(params, n_points: int = 6, name: str = "optimized") -> Strategy:
    tables, f, full = decode(np.asarray(params, dtype=float)[:, None], n_points)
    return Strategy(name, np.linspace(0.0, 1.0, n_points), tables[0], float(f[0]), float(full[0]))


# ---- the device physics, vectorised over candidates -------------------------------------------------------
@dataclass(frozen=True)
class NoiseDraws:
    """Standard normals for every device of the test weights: programming (4, n), ν (4, n) and read
    noise (T, 4, n). Fixed draws = common random numbers."""

    programming: np.ndarray
    nu: np.ndarray
    read: np.ndarray

    @classmethod
    def draw(cls, n_weights: int, n_times: int, rng: np.random.Generator) -> NoiseDraws:
        return cls(rng.standard_normal((4, n_weights)), rng.standard_normal((4, n_weights)),
                   rng.standard_normal((n_times, 4, n_weights)))


def read_back(g_target, draws: NoiseDraws, times_s, params: PcmParams = PcmParams()):
    """Normalised conductances (..., 4, n) right after programming and at each time (T, ..., 4, n).

    ``g_target`` (..., 4, n) normalised targets; the PCM model of ``devices/pcm.py`` with ``params``
    (programming noise, folded-normal ν at the target, drift, 1/f read noise, clamps at 0).
    """
    g_max = params.g_max_S
    target_S = np.asarray(g_target, dtype=float) * g_max
    g_prog = np.maximum(target_S + pcm.prog_noise_std_S(params, target_S) * draws.programming, 0.0)
    nu = np.abs(pcm.drift_nu_mean(params, target_S) + pcm.drift_nu_std(params, target_S) * draws.nu)
    nu = nu * params.drift_scale
    out = []
    for k, t in enumerate(times_s):
        g = pcm.drift(params, g_prog, nu, t)
        sigma = pcm.read_noise_std_relative(params, g_prog, t)
        out.append(np.maximum(g + np.abs(g) * sigma * draws.read[k], 0.0) / g_max)
    return g_prog / g_max, np.stack(out)


def weight_error_over_time(strategy_tables, f, full, weights, draws: NoiseDraws, times_s,
                           params: PcmParams = PcmParams(), grid=None, compensated: bool = True) -> np.ndarray:
    """Normalised mean squared weight error per candidate and time (P, T): mean over the test
    ``weights`` (n,) in [−1, 1] of [A (α_t W̃(t) − w)]², the tables (P, 4, n_grid) interpolated over
    ``grid`` (default: evenly spaced). α_t = 1 without ``compensated``.
    """
    tables = np.asarray(strategy_tables, dtype=float)
    P, _, n_grid = tables.shape
    w = np.asarray(weights, dtype=float)
    grid = np.linspace(0.0, 1.0, n_grid) if grid is None else np.asarray(grid, dtype=float)
    a = np.minimum(np.abs(w), 1.0)
    # Interpolation weights over the grid are shared by all candidates.
    index = np.clip(np.searchsorted(grid, a, side="right") - 1, 0, n_grid - 2)
    frac = (a - grid[index]) / (grid[index + 1] - grid[index])
    g = tables[:, :, index] * (1.0 - frac) + tables[:, :, index + 1] * frac      # (P, 4, n)
    sign = np.where(w < 0, -1.0, 1.0)
    f = np.asarray(f, dtype=float).reshape(P, 1)
    full = np.asarray(full, dtype=float).reshape(P, 1)
    g_prog, g_t = read_back(g, draws, times_s, params)

    def cell(gg):  # (..., P, 4, n) → weights (..., P, n); noise is per physical device, sign outside
        return sign * (f * (gg[..., 0, :] - gg[..., 1, :]) + (gg[..., 2, :] - gg[..., 3, :])) / full

    w_t = cell(g_t)                                                                 # (T, P, n)
    if compensated:
        reference = np.mean(np.abs(cell(g_prog)), axis=-1)                         # (P,)
        alpha = reference[None] / np.maximum(np.mean(np.abs(w_t), axis=-1), 1e-12)  # (T, P)
        w_t = w_t * alpha[..., None]
    error = (ERROR_AMPLIFICATION * (w_t - w)) ** 2
    return error.mean(axis=-1).T


def strategy_error_over_time(strategy: Strategy, weights, times_s, repeats: int, seed: int,
                             params: PcmParams = PcmParams(), compensated: bool = True) -> np.ndarray:
    """Errors (repeats, T) of one strategy over ``repeats`` fresh noise draws (for reports)."""
    rows = []
    for child in np.random.default_rng(seed).spawn(repeats):
        draws = NoiseDraws.draw(len(weights), len(times_s), child)
        rows.append(weight_error_over_time(strategy.table[None], [strategy.f], [strategy.full], weights,
                                           draws, times_s, params, strategy.grid, compensated)[0])
    return np.array(rows)


def test_weights_from(matrices, n: int = 2048, seed: int = 0) -> np.ndarray:
    """``n`` test weights in [−1, 1] following the density of the matrices' weights (each normalised
    by its own max|W|, as a tile maps it): sorted quantiles, shuffled."""
    values = np.concatenate([np.ravel(m) / max(float(np.max(np.abs(m))), 1e-12) for m in matrices])
    quantiles = np.quantile(np.sort(values), np.linspace(0.0, 1.0, n))
    return np.random.default_rng(seed).permutation(quantiles)


# ---- the search --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProgrammingSearchConfig:
    """Differential-evolution search; fields validated as ``programming.<field>``."""

    n_points: int = 6
    n_weights: int = 1024
    popsize: int = 10            # scipy's multiplier: population = popsize × 20 parameters
    maxiter: int = 60
    mutation: float = 0.1
    recombination: float = 0.3
    polish: bool = True
    seed: int = 100
    times_s: tuple[float, ...] = OBJECTIVE_TIMES_S
    start_from_dual_pair: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.start_from_dual_pair, bool):
            raise ConfigError("programming.start_from_dual_pair", self.start_from_dual_pair, "true or false")
        for name, low, high in (("n_points", 2, 50), ("n_weights", 16, 10**6), ("popsize", 2, 1000),
                                ("maxiter", 1, 100000), ("seed", 0, 2**32 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"programming.{name}", value, f"an integer in [{low}, {high}]")
        check_range("programming.mutation", self.mutation, 0.0, 2.0)
        check_range("programming.recombination", self.recombination, 0.0, 1.0, True)
        object.__setattr__(self, "times_s", tuple(float(t) for t in self.times_s))
        for t in self.times_s:
            check_range("programming.times_s", t, 0.0, 1e12, True)


@dataclass(frozen=True)
class SearchResult:
    strategy: Strategy
    objective: float             # TNMSE on the search's fixed draws
    baseline_objective: float    # the dual pair's TNMSE on the same draws
    generations: int
    evaluations: int             # candidate strategies evaluated (population members, polish steps)
    wall_time_s: float
    history: list[float]         # best objective after each generation


def optimize_strategy(weights, config: ProgrammingSearchConfig = ProgrammingSearchConfig(),
                      params: PcmParams = PcmParams(), vectorized: bool = True) -> SearchResult:
    """Search the 20-dimensional strategy space with ``scipy.optimize.differential_evolution``.

    ``weights``: test weights in [−1, 1] (``test_weights_from``; the first ``config.n_weights`` are
    used). ``vectorized``: evaluate the whole population in one call (``vectorized=True`` in scipy,
    updating='deferred'); False evaluates candidates one by one (the benchmark's comparison).
    """
    from scipy.optimize import differential_evolution

    w = np.asarray(weights, dtype=float)[:config.n_weights]
    draws = NoiseDraws.draw(len(w), len(config.times_s), np.random.default_rng(config.seed))
    n = config.n_points

    counted = [0]

    def objective(x):
        x = np.asarray(x, dtype=float)
        single = x.ndim == 1
        counted[0] += 1 if single else x.shape[1]
        tables, f, full = decode(x if not single else x[:, None], n)
        errors = weight_error_over_time(tables, f, full, w, draws, config.times_s, params).mean(axis=1)
        return float(errors[0]) if single else errors

    baseline = dual_pair()
    baseline_objective = float(weight_error_over_time(baseline.table[None], [baseline.f], [baseline.full], w, draws,
                                                      config.times_s, params, baseline.grid).mean())
    history: list[float] = []

    def record(intermediate_result):
        history.append(float(intermediate_result.fun))

    start = time.perf_counter()
    result = differential_evolution(
        objective, [(0.0, 1.0)] * n_parameters(n), strategy="best1bin", popsize=config.popsize,
        maxiter=config.maxiter, tol=0.0, atol=0.0, mutation=config.mutation, recombination=config.recombination,
        polish=config.polish, init="latinhypercube", rng=config.seed, callback=record,
        x0=dual_pair_params(n) if config.start_from_dual_pair else None,
        vectorized=vectorized, updating="deferred" if vectorized else "immediate")
    wall = time.perf_counter() - start
    strategy = strategy_from_params(result.x, n)
    return SearchResult(strategy, float(result.fun), baseline_objective, int(result.nit), counted[0], wall,
                        history)


def programmed_weights(strategy: Strategy, matrices, times_s, rng: np.random.Generator,
                       params: PcmParams = PcmParams(), compensated: bool = True) -> list[list[np.ndarray]]:
    """Per time, the weight matrices as read from devices programmed with ``strategy`` (one draw):
    each matrix is mapped with its own max|W| (one tile per matrix) and drift-compensated per matrix."""
    per_time: list[list[np.ndarray]] = [[] for _ in times_s]
    for matrix, child in zip(matrices, rng.spawn(len(matrices))):
        m = np.asarray(matrix, dtype=float)
        w_max = max(float(np.max(np.abs(m))), 1e-12)
        w = (m / w_max).ravel()
        draws = NoiseDraws.draw(w.size, len(times_s), child)
        g = strategy.conductances(w)
        g_prog, g_t = read_back(g, draws, times_s, params)
        reference = float(np.mean(np.abs(strategy.weights(g_prog))))
        for k in range(len(times_s)):
            read = strategy.weights(g_t[k])
            alpha = reference / max(float(np.mean(np.abs(read))), 1e-12) if compensated else 1.0
            per_time[k].append((alpha * read * w_max).reshape(m.shape))
    return per_time
