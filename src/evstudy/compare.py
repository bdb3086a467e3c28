"""Baskets side by side: which basket moved most, by how much more, and is the difference real?

Pure computation on a :class:`StudyResults`' tidy tables (``cars``,
``memberships``, ``baskets``): nothing is re-estimated. Within one event and
one benchmark (baskets are only compared under the same benchmark), for every
window:

* each basket's CAAR with its 95% confidence interval and its rank;
* for every pair of baskets, the difference of the mean CARs, Welch's t-test
  and a permutation test over basket labels;
* because k baskets make k(k-1)/2 pairs (8 baskets: 28 tests per window), the
  permutation p-values of one family, all pairs of one event, benchmark and
  window, are adjusted for multiplicity: Holm (1979) for the verdict (the
  chance of calling any equal pair different stays at most the level) and
  Benjamini-Hochberg (1995) q-values alongside (the expected share of false
  calls among the pairs called different). The verdict reads the Holm p, and
  says "inconclusive" where the stocks allow no permutation p small enough to
  survive the correction.

A ticker in both baskets of a pair is left out of **both** sides for that
pair: its CAR would otherwise sit in both means, the two samples would not be
independent (Welch) and its label could not be permuted. The pair then
compares the stocks only in A with the stocks only in B, and its row names the
shared tickers.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from evstudy.abnormal import two_sided_t_pvalue
from evstudy.config import MAX_PERMUTATIONS, StudyConfig
from evstudy.errors import ConfigError
from evstudy.results import StudyResults, records
from evstudy.scan import bh_qvalues

DEFAULT_PERMUTATIONS = 10_000
CONFIDENCE = 0.95
TIE_TOLERANCE = 1e-12  # |d*| within this of |d| counts as "at least as extreme" (floating-point ties)
COARSE_SPLITS = 1000  # fewer distinct label splits than this: the permutation p is too coarse to go below 0.001
_BLOCK_CELLS = 2_000_000  # permutation labels held in memory at once (rows x stocks)

COMPARISON_COLUMNS = [
    "event", "basket_a", "basket_b", "window_start", "window_end", "diff", "t", "p_welch", "p_permutation",
    "benchmark", "n_a", "n_b", "mean_a", "mean_b", "df_welch", "shared",
    "family_size", "p_holm", "q_bh", "verdict", "note",
]
FAMILY = ["event", "benchmark", "window_start", "window_end"]  # one family of pairwise tests
_ADJUSTED = ("family_size", "p_holm", "q_bh", "verdict")  # added per family by adjust_pairs
LEVELS = (0.01, 0.05, 0.10)
BASKET_CI_COLUMNS = [
    "event", "benchmark", "basket", "window_start", "window_end", "n", "caar", "se", "ci_low", "ci_high", "rank", "note",
]
MULTIPLE_TESTING = (
    "the permutation p-values of all pairs of one event, benchmark and window form one family (family_size "
    "tests); p_holm is Holm's adjusted p (the verdict: at most a 5% chance of calling any equal pair different "
    "at 5%), q_bh the Benjamini-Hochberg q-value (expected share of false calls among the pairs called different)"
)
SHARED_TICKER_POLICY = (
    "a ticker in both baskets of a pair is left out of both sides for that pair, so each pair compares the stocks "
    "only in A with the stocks only in B (independent samples; every label can be permuted)"
)


@dataclass(frozen=True)
class Comparison:
    """The basket comparison of one study.

    ``pairs`` has one row per (event, benchmark, pair, window) in
    ``COMPARISON_COLUMNS`` order (the comparisons.csv contract: the first nine
    columns are fixed); ``baskets`` each basket's CAAR, 95% CI and rank.
    """

    pairs: pd.DataFrame
    baskets: pd.DataFrame
    n_permutations: int
    seed: int
    notes: tuple[str, ...] = ()

    def ranking(self) -> list[dict[str, Any]]:
        """Per event, benchmark and window: basket names from the highest CAAR to the lowest."""
        ranked = self.baskets.dropna(subset=["rank"]).sort_values("rank", kind="stable")
        out = []
        for (event, bench, start, end), group in ranked.groupby(
            ["event", "benchmark", "window_start", "window_end"], sort=False
        ):
            out.append({
                "event": event, "benchmark": bench, "window_start": int(start), "window_end": int(end),
                "order": group["basket"].tolist(),
            })
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "confidence": CONFIDENCE,
            "shared_tickers": SHARED_TICKER_POLICY,
            "multiple_testing": MULTIPLE_TESTING,
            "baskets": records(self.baskets),
            "ranking": self.ranking(),
            "pairs": records(self.pairs),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- statistics


def welch_test(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch's unequal-variance t-test of mean(a) = mean(b), column by column.

    ``a`` is (n_a x W), ``b`` (n_b x W). Returns t, two-sided p and the
    Welch-Satterthwaite degrees of freedom per column; NaN where n_a or n_b is
    below 2 or both samples have zero variance (the caller turns NaN into
    None with a note).

    Notes
    -----
    Welch (1947), *Biometrika* 34, 28-35:
    t = (mean_a - mean_b) / sqrt(v_a/n_a + v_b/n_b), with sample variances
    (ddof 1) and df = (v_a/n_a + v_b/n_b)^2 / ((v_a/n_a)^2/(n_a-1) + (v_b/n_b)^2/(n_b-1)).
    """
    na, nb = a.shape[0], b.shape[0]
    width = a.shape[1]
    if na < 2 or nb < 2:
        nan = np.full(width, np.nan)
        return nan, nan, nan
    qa = a.var(axis=0, ddof=1) / na
    qb = b.var(axis=0, ddof=1) / nb
    se2 = qa + qb
    ok = se2 > 0
    safe = np.where(ok, se2, 1.0)
    t = np.where(ok, (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(safe), np.nan)
    df = np.where(ok, safe**2 / (qa**2 / (na - 1) + qb**2 / (nb - 1)), np.nan)
    p = np.where(ok, two_sided_t_pvalue(np.where(ok, t, 0.0), np.where(ok, df, 1.0)), np.nan)
    return t, p, df


def permutation_pvalues(a: np.ndarray, b: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sided permutation p-value of mean(a) - mean(b) per column, labels shuffled across a and b.

    Every permutation reassigns the n_a + n_b stocks to groups of the same
    sizes; one label vector serves all windows (columns), so the windows are
    tested on the same permutations.

    Notes
    -----
    p = (1 + #{|d*| >= |d|}) / (n_perm + 1) (Phipson & Smyth 2010, *Stat.
    Appl. Genet. Mol. Biol.* 9(1), eq. 2: a Monte-Carlo p that is never 0).
    The labels form an (n_perm x N) matrix shuffled row by row with
    ``Generator.permuted``, in blocks of at most ``_BLOCK_CELLS`` cells; the
    group sums are one matrix product per block. Row k of the matrix uses the
    same random draws as ``rng.permutation(labels)`` called k-th in a loop.
    """
    pooled = np.vstack([a, b])
    na, n = a.shape[0], pooled.shape[0]
    nb = n - na
    observed = np.abs(a.mean(axis=0) - b.mean(axis=0))
    total = pooled.sum(axis=0)
    labels = np.concatenate([np.ones(na), np.zeros(nb)])
    block = max(1, min(n_permutations, _BLOCK_CELLS // max(n, 1)))
    extreme = np.zeros(pooled.shape[1], dtype=np.int64)
    done = 0
    while done < n_permutations:
        rows = min(block, n_permutations - done)
        shuffled = rng.permuted(np.broadcast_to(labels, (rows, n)), axis=1)
        # einsum's own loop, not BLAS: for these thin products OpenBLAS's thread start-up cost ~30x the
        # arithmetic on a busy 2-core machine (benchmarks/README.md).
        sum_a = np.einsum("ij,jk->ik", shuffled, pooled)
        diff = sum_a / na - (total - sum_a) / nb
        extreme += (np.abs(diff) >= observed - TIE_TOLERANCE).sum(axis=0)
        done += rows
    return (1.0 + extreme) / (n_permutations + 1.0)


def holm_adjusted(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family; NaN p-values are left out of m and stay NaN.

    Notes
    -----
    Holm (1979), *Scand. J. Statist.* 6, 65-70: with the m finite p-values
    sorted ascending, p_(1) <= ... <= p_(m),

        p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)),

    and rejecting every hypothesis with p~ <= alpha keeps the family-wise
    error rate at alpha under any dependence between the tests (pairs sharing a
    basket are dependent). Equals ``statsmodels.stats.multitest.multipletests(p,
    method="holm")[1]``.
    """
    p = np.asarray(p_values, dtype=float)
    finite = np.isfinite(p)
    m = int(finite.sum())
    out = np.full(p.shape, np.nan)
    if m == 0:
        return out
    order = np.argsort(p[finite], kind="stable")
    ranked = p[finite][order]
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out[finite] = adjusted
    return out


def pair_verdict(p_holm: float | None, diff: float | None, p_floor: float | None, family_size: int) -> str:
    """Words for one pair from its Holm-adjusted permutation p (the contract's verdict words).

    A pair that is not significant while its stocks allow no permutation p
    below ``p_floor``, with ``p_floor`` times m (m = ``family_size``) at 5% or
    more, is "inconclusive", not "no significant difference": Holm's first step
    needs a p below 0.05/m, which those stocks cannot give (such a pair could
    pass only after nearly every other pair had).
    """
    if p_holm is None or not math.isfinite(p_holm):
        return "not computed"
    direction = "" if not diff else (", A above B" if diff > 0 else ", A below B")
    for level in LEVELS:
        if p_holm < level:
            return f"significant at {level:.0%}{direction}"
    if p_floor is not None and p_floor * family_size >= 0.05:
        return (f"inconclusive: too few stocks (no permutation p below about {p_floor:.2g}, "
                f"{family_size} pairs need one below {0.05 / family_size:.2g})")
    return "no significant difference"


def adjust_pairs(pairs: pd.DataFrame, floors: pd.Series) -> pd.DataFrame:
    """``pairs`` with family_size, p_holm, q_bh and verdict per family (event, benchmark, window).

    ``floors``: per row, the smallest permutation p the pair's stocks allow
    (about max(1/(shuffles + 1), 1/number of label splits)). Family size is the
    number of pairs with a permutation p in that family.
    """
    p = pairs["p_permutation"].to_numpy(dtype=float)
    holm = np.full(len(pairs), np.nan)
    bh = np.full(len(pairs), np.nan)
    size = np.zeros(len(pairs), dtype=np.int64)
    for rows in pairs.groupby(FAMILY, sort=False).indices.values():  # a loop over windows, not over stocks
        holm[rows] = holm_adjusted(p[rows])
        bh[rows] = bh_qvalues(p[rows])
        size[rows] = int(np.isfinite(p[rows]).sum())
    out = pairs.assign(family_size=size, p_holm=_none_if_nan(holm), q_bh=_none_if_nan(bh))
    out["verdict"] = [
        pair_verdict(h, d, f, int(m)) for h, d, f, m in zip(out["p_holm"], out["diff"], floors, size)
    ]
    return out


def check_permutations(n_permutations: int, seed: int) -> None:
    """Reject a permutation count below 1 or a negative seed (numpy seeds are non-negative)."""
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) \
            or not 1 <= n_permutations <= MAX_PERMUTATIONS:
        raise ConfigError(
            f"--permutations {n_permutations!r}: give a whole number from 1 to {MAX_PERMUTATIONS:,} (e.g. 10000)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed {seed!r}: give a whole number of at least 0")


def pair_rng(seed: int, event: str, benchmark: str, basket_a: str, basket_b: str) -> np.random.Generator:
    """The random stream of one pair: fixed by the seed and the pair, not by which other pairs run.

    So ``evstudy compare --baskets A,B`` reproduces the p-value that the full
    comparison reports for A and B with the same seed.
    """
    key = zlib.crc32(f"{event}\x1f{benchmark}\x1f{basket_a}\x1f{basket_b}".encode())
    return np.random.default_rng([seed, key])


# --------------------------------------------------------------------------- tables


def _none_if_nan(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _pair_rows(
    event: str, bench: str, name_a: str, name_b: str, members_a: list[str], members_b: list[str],
    cars: pd.DataFrame, windows: list[tuple[int, int]], n_permutations: int, seed: int,
) -> list[tuple]:
    """One row per window for the pair (A, B); ``cars`` is (ticker x window) for this event and benchmark."""
    set_a, set_b = set(members_a), set(members_b)
    shared = [t for t in members_a if t in set_b]
    only_a = [t for t in members_a if t not in set_b]
    only_b = [t for t in members_b if t not in set_a]
    notes = []
    if shared:
        notes.append(f"{', '.join(shared)} in both baskets: left out of both sides")
    width = len(windows)
    if not only_a or not only_b:
        empty, members = (name_a, members_a) if not only_a else (name_b, members_b)
        notes.append(
            f"every included stock of {empty} is also in the other basket: nothing left to compare" if members
            else f"no stock of {empty} was included: nothing to compare"
        )
        blank = [None] * width
        t = p_w = p_perm = df = mean_a = mean_b = diff = blank
        floor = None
    else:
        values = cars.to_numpy()  # rows by position: a .loc per pair cost more than the pair's statistics
        a = values[cars.index.get_indexer(only_a)]
        b = values[cars.index.get_indexer(only_b)]
        mean_a, mean_b = _none_if_nan(a.mean(axis=0)), _none_if_nan(b.mean(axis=0))
        diff = _none_if_nan(a.mean(axis=0) - b.mean(axis=0))
        t_arr, p_arr, df_arr = welch_test(a, b)
        t, p_w, df = _none_if_nan(t_arr), _none_if_nan(p_arr), _none_if_nan(df_arr)
        if len(only_a) < 2 or len(only_b) < 2:
            notes.append(
                f"Welch t needs at least 2 stocks on each side ({len(only_a)} vs {len(only_b)}): "
                "only the permutation test is reported"
            )
        elif any(v is None for v in t):
            notes.append("Welch t undefined where both sides' CARs have zero variance")
        p_perm = _none_if_nan(
            permutation_pvalues(a, b, n_permutations, pair_rng(seed, event, bench, name_a, name_b))
        )
        splits = math.comb(len(only_a) + len(only_b), len(only_a))
        floor = max(1.0 / (n_permutations + 1.0), 1.0 / splits)
        if splits < COARSE_SPLITS:
            notes.append(
                f"only {splits} ways to split the {len(only_a) + len(only_b)} stocks into groups of "
                f"{len(only_a)} and {len(only_b)}: the permutation p cannot go much below 1/{splits}"
            )
    note = "; ".join(notes)
    return [
        (event, name_a, name_b, start, end, diff[w], t[w], p_w[w], p_perm[w], bench, len(only_a), len(only_b),
         mean_a[w], mean_b[w], df[w], ", ".join(shared), note, floor)
        for w, (start, end) in enumerate(windows)
    ]


def _basket_ci(results: StudyResults, keep: set[tuple[str, str, str]]) -> pd.DataFrame:
    """Each compared basket's CAAR with its 95% CI (CAAR ± t(N-1, 0.975) x cross-sectional SE) and rank."""
    table = results.baskets
    mask = [key in keep for key in zip(table["event"], table["benchmark"], table["basket"])]
    rows = table.loc[mask, ["event", "benchmark", "basket", "window_start", "window_end", "n", "caar", "se"]].copy()
    n = rows["n"].to_numpy(dtype=float)
    se = rows["se"].to_numpy(dtype=float)
    ok = (n >= 2) & np.isfinite(se)
    quantile = special.stdtrit(np.where(ok, n - 1, 1), 0.5 + CONFIDENCE / 2)  # Student t inverse CDF
    half = np.where(ok, quantile * np.where(ok, se, 0.0), np.nan)
    rows["ci_low"] = rows["caar"] - half
    rows["ci_high"] = rows["caar"] + half
    rows["note"] = np.where(ok, "", np.where(n >= 1, "one stock: no cross-sectional interval", "no stock included"))
    rows["rank"] = (
        rows.groupby(["event", "benchmark", "window_start", "window_end"], sort=False)["caar"]
        .rank(ascending=False, method="min")
        .astype("Int64")
    )
    return rows.reset_index(drop=True)[BASKET_CI_COLUMNS]


def comparable_groups(results: StudyResults) -> dict[tuple[str, str], list[str]]:
    """(event, benchmark) → baskets measured against that benchmark in that event, 2 or more.

    Order: as the event lists them (its own tickers first), else as the config defines them.
    """
    cfg = results.config
    order = {e.id: {b.name: i for i, b in enumerate(cfg.baskets_for(e))} for e in cfg.events}
    groups: dict[tuple[str, str], list[str]] = {}
    members = results.memberships.drop_duplicates(["event", "benchmark", "basket"])
    for (event, bench), group in members.groupby(["event", "benchmark"], sort=False):
        rank = order.get(event, {})
        names = sorted(group["basket"], key=lambda name: rank.get(name, len(rank)))
        if len(names) >= 2:
            groups[(event, bench)] = names
    return groups


def compare_baskets(
    results: StudyResults,
    *,
    baskets: Sequence[str] | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int | None = None,
) -> Comparison:
    """Compare every pair of baskets that share an event and a benchmark (or only ``baskets``).

    For each pair and window: ``diff`` = mean CAR of the stocks only in A
    minus that of the stocks only in B, Welch's t and p, and the permutation
    p over ``n_permutations`` label shuffles drawn from ``seed`` (default: the
    study's ``seed``, which also seeds its placebo tests).
    """
    seed = results.config.seed if seed is None else seed
    check_permutations(n_permutations, seed)
    known = [b.name for b in results.config.baskets]
    if baskets is not None:
        unknown = [name for name in baskets if name not in known]
        if unknown:
            raise ConfigError(f"--baskets: {unknown[0]!r} is not a basket of this study; its baskets: {', '.join(known)}")
    chosen = set(baskets) if baskets is not None else set(known)
    windows = [(w.start, w.end) for w in results.config.windows]
    rows: list[tuple] = []
    keep: set[tuple[str, str, str]] = set()
    notes = []
    for (event, bench), names in comparable_groups(results).items():
        names = [n for n in names if n in chosen]
        if len(names) < 2:
            continue
        cars = results.cars[(results.cars["event"] == event) & (results.cars["benchmark"] == bench)]
        wide = cars.pivot(index="ticker", columns=["window_start", "window_end"], values="car")[windows]
        members = results.memberships[
            (results.memberships["event"] == event) & (results.memberships["benchmark"] == bench)
        ]
        included = set(wide.index)
        per_basket = {
            name: [t for t in members.loc[members["basket"] == name, "ticker"] if t in included] for name in names
        }
        keep.update((event, bench, name) for name in names)
        for i, name_a in enumerate(names):
            for name_b in names[i + 1:]:
                rows += _pair_rows(
                    event, bench, name_a, name_b, per_basket[name_a], per_basket[name_b], wide, windows,
                    n_permutations, seed,
                )
    if not rows:
        notes.append("no two baskets share an event and a benchmark: nothing to compare")
    raw = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c not in _ADJUSTED] + ["_floor"])
    pairs = adjust_pairs(raw.drop(columns="_floor"), raw["_floor"])[COMPARISON_COLUMNS]
    return Comparison(
        pairs=pairs,
        baskets=_basket_ci(results, keep),
        n_permutations=n_permutations,
        seed=seed,
        notes=tuple(notes),
    )


def attach_comparison(
    results: StudyResults, *, n_permutations: int = DEFAULT_PERMUTATIONS, seed: int | None = None
) -> StudyResults:
    """``results`` with its basket comparison in ``extras["comparisons"]``, when two baskets can be compared."""
    if not comparable_groups(results):
        return results
    comparison = compare_baskets(results, n_permutations=n_permutations, seed=seed)
    return dataclasses.replace(results, extras={**results.extras, "comparisons": comparison})


def restrict_baskets(config: StudyConfig, names: Sequence[str], where: str = " (--baskets)") -> StudyConfig:
    """``config`` with only the baskets ``names``; events left without any of them are dropped."""
    known = [b.name for b in config.baskets]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"basket {unknown[0]!r}{where} is not defined in the config; its baskets: {', '.join(known)}")
    if len(set(names)) < 2:
        raise ConfigError(f"{', '.join(names) or 'no basket'}{where}: name at least two baskets to compare, e.g. A,B")
    chosen = set(names)
    baskets = tuple(b for b in config.baskets if b.name in chosen)
    events = []
    for event in config.events:
        kept = tuple(name for name in event.baskets if name in chosen)
        if event.baskets and not kept:
            continue
        if not event.baskets and not any(not b.event for b in baskets):
            continue
        events.append(dataclasses.replace(event, baskets=kept))
    if not events:
        raise ConfigError(f"{', '.join(names)}{where}: no event of the config uses these baskets")
    ids = {e.id for e in events}
    baskets = tuple(b for b in baskets if not b.event or b.event in ids)
    return dataclasses.replace(config, baskets=baskets, events=tuple(events))


def check_comparable(config: StudyConfig, where: str = "") -> None:
    """Raise unless some event has two baskets measured against a common benchmark."""
    for event in config.events:
        seen: dict[str, int] = {}
        for basket in config.baskets_for(event):
            for bench in basket.benchmarks:
                seen[bench] = seen.get(bench, 0) + 1
        if any(count >= 2 for count in seen.values()):
            return
    source = f" in {config.source_file}" if config.source_file else ""
    raise ConfigError(
        f"nothing to compare{where}{source}: no event has two baskets measured against the same benchmark; "
        f"compare needs at least two baskets in one event"
    )
