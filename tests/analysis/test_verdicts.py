"""The verdict engine against brute force: counts, p, interval, their agreement, power, adjustment, the table."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from analysis import verdicts as v


def subset_means(d: list[int]) -> list[Fraction]:
    """Every non-empty subset mean of integer differences, exactly."""
    return [
        Fraction(sum(d[i] for i in s), r)
        for r in range(1, len(d) + 1)
        for s in itertools.combinations(range(len(d)), r)
    ]


def brute_p_and_interval(d: list[int], alpha: float) -> tuple[float, float, float]:
    """The two-sided p at 0 and the interval [M₍ₖ₎, M₍ₙ₋ₖ₎] straight from the definition (units of d)."""
    means = sorted(subset_means(d))
    total = 2 ** len(d)
    upper = (1 + sum(m <= 0 for m in means)) / total
    lower = (1 + sum(m >= 0 for m in means)) / total
    k = math.floor(alpha * total / 2)
    low, high = (float(means[k - 1]), float(means[total - 1 - k])) if k else (math.nan, math.nan)
    return min(1.0, 2 * min(upper, lower)), low, high


def thousandths(rng: np.random.Generator, n: int, low: int = -3, high: int = 6) -> list[int]:
    """Small integer differences (in thousandths): ties, zeros and zero subset means are common."""
    return [int(x) for x in rng.integers(low, high, n)]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-15)


def test_meet_in_the_middle_counts_equal_brute_force_at_any_delta():
    rng = np.random.default_rng(0)
    for n in range(0, 11):
        d = thousandths(rng, n)
        nonzero = np.array([x for x in d if x != 0], dtype=float)
        zeros = n - len(nonzero)
        # deltas on the grid and halfway between: exact in float, so brute force sees the same ties
        for delta in sorted({0.0, *(x / 2 for x in range(-8, 12)), *map(float, d)}):
            low, high = v._counts(nonzero, zeros, delta)
            means = subset_means(d)
            assert low == 1 + sum(m <= Fraction(delta) for m in means)
            assert high == 1 + sum(m >= Fraction(delta) for m in means)


def test_batched_counts_equal_the_single_counts():
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 8, 11):
        x = rng.integers(-4, 5, (50, n))
        low, high = v._batch_counts(x)
        for row, lo, hi in zip(x, low, high, strict=True):
            assert (lo, hi) == v._counts(row.astype(float), 0, 0.0)


@pytest.mark.parametrize("listing", [True, False], ids=["listed means", "bisection"])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.3])
def test_p_and_interval_equal_brute_force_enumeration(monkeypatch, listing, alpha):
    if not listing:  # the bisection path, normally used above 16 seeds, checked where brute force is cheap
        monkeypatch.setattr(v, "LIST_UP_TO", 0)
    rng = np.random.default_rng(int(alpha * 100))
    for n in range(1, 11):
        for _ in range(3):
            d = thousandths(rng, n)
            result = v.sign_flip(np.array(d) / 1000, alpha)
            p, low, high = brute_p_and_interval(d, alpha)
            assert result.p_value == p
            assert same(result.ci_low, low / 1000) and same(result.ci_high, high / 1000)
            k = math.floor(alpha * 2**n / 2)
            assert same(result.ci_level, 1 - 2 * k / 2**n if k else math.nan)


def test_interval_excludes_zero_exactly_when_p_is_at_most_alpha():
    rng = np.random.default_rng(2)
    outcomes = {True: 0, False: 0}
    sizes = [*range(1, 13), 17, 18, 20, 23, 26]  # listing, bisection (17–20) and Monte Carlo (> 20)
    for n in sizes:
        for trial in range(15 if n <= 12 else 6):
            d = np.array(thousandths(rng, n, -3 + trial % 3, 5)) / 1000  # centred to mostly positive
            if trial % 4 == 0:
                d[: n // 3] = 0.0  # runs of zero differences
            for alpha in (0.05, 0.1):
                result = v.sign_flip(d, alpha)
                if math.isnan(result.ci_level):  # no interval: then no p can reach α either
                    assert result.min_attainable_p > alpha and result.p_value > alpha
                    continue
                excludes = result.ci_low > 0 or result.ci_high < 0
                assert excludes == (result.p_value <= alpha), (d, alpha, result)
                outcomes[excludes] += 1
    assert min(outcomes.values()) > 50  # both answers were exercised, not just one


def test_the_two_formerly_contradictory_cases_now_agree():
    differs = v.sign_flip([0.001, 0.001, 0.001, 0.001, 0.001, 0.2])
    assert differs.p_value == pytest.approx(0.03125)
    assert (differs.ci_low, differs.ci_high, differs.ci_level) == pytest.approx((0.001, 0.2, 0.96875))
    unclear = v.sign_flip([0.020, 0.021, 0.019, 0.022, 0.018, -0.001])
    assert unclear.p_value == pytest.approx(0.0625)
    assert (unclear.ci_low, unclear.ci_high) == pytest.approx((-0.001, 0.022)) and unclear.ci_low < 0
    for d, expected in (
        ([0.001, 0.001, 0.001, 0.001, 0.001, 0.2], "better"),
        ([0.020, 0.021, 0.019, 0.022, 0.018, -0.001], "inconclusive"),
    ):
        table = v.verdict_table(one_comparison(d), reference="ref")
        assert table["verdict"].item() == expected


def one_comparison(d: list[float], base: float = 0.5) -> pd.DataFrame:
    seeds = range(len(d))
    arm = pd.DataFrame({"arm": "awd", "seed": seeds, "value": [base + x for x in d]})
    return pd.concat([pd.DataFrame({"arm": "ref", "seed": seeds, "value": base}), arm], ignore_index=True)


def test_too_few_seeds_for_any_interval_and_the_attainable_level():
    five = v.sign_flip([0.01, 0.02, 0.03, 0.02, 0.01])
    assert math.isnan(five.ci_low) and math.isnan(five.ci_high) and math.isnan(five.ci_level)
    assert five.p_value == five.min_attainable_p == 2 / 32
    six = v.sign_flip([0.03, -0.01, 0.02, 0.0, 0.05, 0.01])
    assert (six.ci_low, six.ci_high, six.ci_level) == pytest.approx((-0.01, 0.05, 1 - 2 / 64))
    assert v.interval([0.03, -0.01, 0.02, 0.0, 0.05, 0.01], 0.05) == pytest.approx((-0.01, 0.05, 1 - 2 / 64))


def test_ties_zeros_and_empty_input():
    d = [0.43 - 0.42, 0.53 - 0.52, 0.63 - 0.62, 0.0, 1e-14, -0.02]  # equal in decimal, not in binary
    result = v.sign_flip(d)
    assert (result.wins, result.ties, result.losses) == (3, 2, 1)
    assert result.min_attainable_p == 2 / 2**4  # the zeros (1e-14 is below the tolerance) drop out of p
    assert result.p_value == v.sign_flip([0.01, 0.01, 0.01, -0.02]).p_value  # and they are exact ties
    assert v.sign_flip(np.zeros(7)).p_value == 1.0
    empty = v.sign_flip([])
    assert empty.n == 0 and math.isnan(empty.p_value) and empty.p_method == "none"
    with pytest.raises(ValueError, match="missing"):
        v.sign_flip([0.01, math.nan])


def test_hodges_lehmann_is_the_median_of_the_walsh_averages():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 9):
        d = np.round(rng.normal(0, 0.02, n), 4)
        walsh = [(d[i] + d[j]) / 2 for i in range(n) for j in range(i, n)]
        assert v.sign_flip(d).hodges_lehmann == pytest.approx(np.median(walsh), abs=1e-12)


def test_monte_carlo_beyond_twenty_is_close_to_exact_and_says_so(monkeypatch):
    rng = np.random.default_rng(4)
    d = np.round(rng.normal(0.004, 0.01, 24), 3)
    sampled = v.sign_flip(d)
    assert sampled.p_method == "monte carlo (20,000 draws)"
    assert sampled.min_attainable_p == pytest.approx(2 / 20_001)
    assert round(sampled.p_value * 20_001 / 2) == pytest.approx(sampled.p_value * 20_001 / 2)  # (1 + count)/(B + 1)
    monkeypatch.setattr(v, "EXACT_UP_TO", 24)
    exact = v.sign_flip(d)
    assert exact.p_method == "exact"
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.01)
    assert sampled.ci_low == pytest.approx(exact.ci_low, abs=5e-4)
    assert sampled.ci_high == pytest.approx(exact.ci_high, abs=5e-4)


def test_power_at_six_seeds_is_the_chance_that_all_six_agree():
    expected = NormalDist().cdf(1.5) ** 6  # at 6 seeds only "all positive" (or all negative) rejects
    assert v.power(6, 0.015, 0.01, 0.05) == pytest.approx(expected, abs=0.03)
    assert v.power(5, 0.5, 0.01, 0.05) == 0.0  # below the floor nothing can reject
    assert v.power(12, 0.0, 0.01, 0.05) <= 0.05 + 0.015  # no effect: rejects at most at the level
    beyond = NormalDist().cdf(0.5 * math.sqrt(30) - NormalDist().inv_cdf(0.975))
    assert v.power(30, 0.005, 0.01, 0.05) == pytest.approx(beyond, abs=1e-3)  # the normal approximation
    assert v.power(10, 0.5, 1.0, 0.05) == v.power(10, 5.0, 10.0, 0.05)  # only effect/sd matters
    assert math.isnan(v.power(10, 0.01, math.nan, 0.05))


def test_sd_upper_is_the_one_sided_90_percent_chi_square_limit():
    from scipy import stats

    d = np.array([0.012, 0.004, 0.02, -0.003, 0.009, 0.015])
    s = d.std(ddof=1)
    assert v.sd_upper(d) == pytest.approx(s * math.sqrt(5 / stats.chi2.ppf(0.10, 5)))
    assert v.sd_upper(d) > s
    assert math.isnan(v.sd_upper([0.01])) and "1 paired seed" in v.sd_note([0.01])
    assert math.isnan(v.sd_upper([0.01] * 4)) and "all 4 differences are equal" in v.sd_note([0.01] * 4)
    assert v.sd_note(d) is None


def test_seeds_needed_uses_the_declared_effect_and_only_the_sd_of_the_data():
    d = np.array([0.012, 0.004, 0.02, -0.003, 0.009, 0.015])
    needed = v.seeds_needed(d, min_effect=0.01)
    assert needed == v.seeds_needed(d + 0.05, min_effect=0.01) == v.seeds_needed(d - 0.03, min_effect=0.01)
    assert needed == v.seeds_needed(-d, min_effect=0.01)  # the sign of the observed difference plays no part
    sd = v.sd_upper(d)
    assert needed >= v.seeds_floor()
    assert v.power(needed, 0.01, sd, 0.05) >= 0.8
    assert needed == v.seeds_floor() or v.power(needed - 1, 0.01, sd, 0.05) < 0.8
    assert v.seeds_needed(d, min_effect=0.02) < needed  # a larger effect of interest needs fewer seeds
    assert v.seeds_needed(d, min_effect=0.01, family_size=6) > needed  # a stricter per-test level needs more
    assert v.seeds_needed([0.01] * 5) is None  # no spread: cannot be estimated
    assert v.seeds_needed(d, min_effect=1e-5) is None  # beyond 1,000 seeds


def test_seeds_floor_is_where_the_smallest_p_reaches_the_per_test_level():
    assert v.seeds_floor(0.05, 1) == 6  # 2/2⁶ = 0.031 ≤ 0.05 < 2/2⁵
    assert v.seeds_floor(0.05, 6) == 8  # 2/2⁸ = 0.0078 ≤ 0.0083 < 2/2⁷
    assert v.seeds_floor(0.1, 1) == 5


def test_holm_by_hand():
    adjusted = v.holm([0.01, 0.04, math.nan, 0.03, 0.5])
    assert adjusted[[0, 3, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert math.isnan(adjusted[2])
    assert v.adjust_pvalues([0.2, 0.01], "none") == pytest.approx([0.2, 0.01])


def null_block(rng: np.random.Generator, seeds: int, arms: int) -> np.ndarray:
    """Values of arms identical in distribution, sharing a per-seed effect (seeds × arms)."""
    return 0.5 + rng.normal(0, 0.01, (seeds, 1)) + rng.normal(0, 0.005, (seeds, arms))


def test_maxt_is_at_least_raw_ordered_like_it_and_below_bonferroni():
    rng = np.random.default_rng(5)
    block = null_block(rng, 10, 5)
    block[:, 1] += 0.012  # one arm clearly better
    block[:, 2] += 0.004
    block[3, 4] = math.nan  # a seed missing for one arm: it is shuffled among the arms it has
    pairs = [(0, a, 0) for a in range(1, 5)]
    raw, adjusted = v.maxt([block], pairs)
    assert np.all(adjusted >= raw)
    assert np.array_equal(np.argsort(raw, kind="stable"), np.argsort(adjusted, kind="stable"))
    slack = 3 * math.sqrt(0.25 / 2001)  # Monte Carlo error of the permutation share
    assert np.all(adjusted <= np.minimum(1, 4 * raw) + slack)
    assert adjusted[0] <= 0.05 < adjusted[1:].min()
    again = v.maxt([block], pairs)
    assert np.array_equal(again[1], adjusted)  # seeded
    single_raw, single = v.maxt([block[:, :2]], [(0, 1, 0)])
    assert np.array_equal(single, single_raw)  # a family of one is not adjusted


@pytest.mark.slow
def test_null_family_of_six_arms_at_six_seeds_claims_nothing():
    # The reference and 6 arms on 6 seeds, 1,000 times: the chance of any better/worse verdict
    # (p_adjusted ≤ 0.05, what verdict_table calls better or worse) must be ≤ 0.05. Three binomial
    # standard errors of slack (0.021) cover the Monte Carlo error of the estimated rate for a
    # procedure whose true rate is 0.05. 500 permutations per study keep it quick: the
    # (1 + count)/(B + 1) p is valid for any B, and here the smallest adjusted p (about 0.13 for
    # the smallest raw p, 2/64) is far from 0.05 whatever B is.
    rng = np.random.default_rng(6)
    pairs = [(0, a, 0) for a in range(1, 7)]
    studies = (v.maxt([null_block(rng, 6, 7)], pairs, draws=500, seed=i)[1] for i in range(1000))
    claims = sum(bool(np.any(adjusted <= 0.05)) for adjusted in studies)
    assert claims / 1000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000)


@pytest.mark.slow
def test_null_family_at_ten_seeds_keeps_the_familywise_rate_where_unadjusted_tests_do_not():
    # At 10 seeds single tests can reject, so this can fail: unadjusted, some of the 6 null
    # comparisons is "significant" in about a fifth of the studies. 400 permutations per study
    # keep it quick; the (1 + count)/(B + 1) p is valid for any B. Slack: three binomial
    # standard errors of a rate of 0.05 over 300 studies (0.038).
    rng = np.random.default_rng(7)
    pairs = [(0, a, 0) for a in range(1, 7)]
    studies = [v.maxt([null_block(rng, 10, 7)], pairs, draws=400, seed=i) for i in range(300)]
    adjusted_rate = np.mean([np.any(adjusted <= 0.05) for _, adjusted in studies])
    raw_rate = np.mean([np.any(raw <= 0.05) for raw, _ in studies])
    assert adjusted_rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)
    assert raw_rate >= 0.12


def study(seeds: int = 8) -> pd.DataFrame:
    """Two label-noise groups; arms: ref, better (+2 points), same (±0.1 point), worse (−2 points), and a NaN."""
    rng = np.random.default_rng(8)
    rows = []
    for noise in (0.0, 0.2):
        for seed in range(seeds):
            base = 0.6 - noise + rng.normal(0, 0.01)
            for arm, shift, spread in (
                ("ref", 0, 0.001),
                ("up", 0.02, 0.004),
                ("same", 0, 0.001),
                ("down", -0.02, 0.004),
            ):
                rows.append(
                    {"label_noise": noise, "arm": arm, "seed": seed, "value": base + shift + rng.normal(0, spread)}
                )
    df = pd.DataFrame(rows)
    df.loc[(df["arm"] == "up") & (df["seed"] == 2) & (df["label_noise"] == 0.2), "value"] = math.nan
    return df


def test_verdict_table_columns_family_and_verdicts():
    table = v.verdict_table(study(), reference="ref", by=("label_noise",))
    assert list(table.columns) == ["label_noise", *v.COLUMNS]
    assert v.COLUMNS[:3] == ["arm", "reference", "n"] and v.COLUMNS[-1] == "verdict"
    assert len(table) == 6 and set(table["family_size"]) == {6} and set(table["seeds_floor"]) == {8}
    assert set(table["adjustment"]) == {"maxT"} and set(table["p_method"]) == {"exact"}
    verdicts = table.set_index(["label_noise", "arm"])["verdict"]
    assert verdicts[(0.0, "up")] == "better" and verdicts[(0.0, "down")] == "worse"
    assert verdicts[(0.0, "same")] == verdicts[(0.2, "same")] == "equivalent"
    gap = table.set_index(["label_noise", "arm"]).loc[(0.2, "up")]
    assert (gap["n"], gap["n_missing"]) == (7, 1)  # the NaN is left out and counted, never tested
    assert (table["p_adjusted"] >= table["p_value"]).all()
    excludes = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    assert (excludes == (table["p_value"] <= 0.05)).all()
    assert table["seeds_needed"].dtype == "Int64" and table.attrs["notes"] == []
    row = table.iloc[0]
    d = study().pipe(lambda df: df[df["label_noise"] == 0.0]).pivot(index="seed", columns="arm", values="value")
    equivalence = v.interval((d["up"] - d["ref"]).to_numpy(), 2 * 0.05 / 6)  # two one-sided tests at α/m
    assert (row["equivalence_low"], row["equivalence_high"]) == pytest.approx(equivalence[:2], abs=1e-12)
    holm = v.verdict_table(study(), reference="ref", by="label_noise", adjust="holm")
    assert set(holm["adjustment"]) == {"holm"} and (holm["p_adjusted"] >= holm["p_value"]).all()


def test_too_few_seeds_inconclusive_and_no_pairs():
    few = v.verdict_table(study(seeds=4), reference="ref", by=("label_noise",), adjust="none", min_effect=0.05)
    assert set(few["verdict"]) == {"too few seeds"}
    assert few["ci_level"].isna().all() and few["equivalence_low"].isna().all()  # 4 seeds: no interval exists
    noisy = one_comparison([0.03, -0.02, 0.01, -0.015, 0.02, 0.0, -0.01, 0.025])
    assert v.verdict_table(noisy, reference="ref")["verdict"].item() == "inconclusive"
    lonely = pd.concat([noisy, pd.DataFrame({"arm": ["solo"], "seed": [99], "value": [0.4]})], ignore_index=True)
    table = v.verdict_table(lonely, reference="ref").set_index("arm")
    assert table.loc["solo", "n"] == 0 and table.loc["solo", "verdict"] == "too few seeds"
    assert math.isnan(table.loc["solo", "p_value"]) and math.isnan(table.loc["solo", "p_adjusted"])
    assert table.loc["awd", "family_size"] == 1  # a comparison without pairs is not part of the family
    assert any("solo vs ref" in note and "no seed" in note for note in table.attrs["notes"])
    flat = v.verdict_table(one_comparison([0.01] * 7), reference="ref")
    assert flat["verdict"].item() == "better" and "all 7 differences are equal" in flat.attrs["notes"][0]


def test_two_grouping_columns_make_one_family():
    df = pd.concat([study().assign(test="clean"), study().assign(test="pgd")], ignore_index=True)
    table = v.verdict_table(df, reference="ref", by=("test", "label_noise"), adjust="none", min_effect=0.05)
    assert list(table.columns[:3]) == ["test", "label_noise", "arm"]
    assert len(table) == 12 and set(table["family_size"]) == {12} and set(table["seeds_floor"]) == {9}
    assert list(table[["test", "label_noise"]].drop_duplicates().itertuples(index=False, name=None)) == [
        ("clean", 0.0),
        ("clean", 0.2),
        ("pgd", 0.0),
        ("pgd", 0.2),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns="seed"), r"missing columns \['seed'\]"),
        (lambda df: pd.concat([df, df.iloc[[0]]]), r"share \(arm, seed\) = \('ref', 0\)"),
        (lambda df: df.assign(value=df["value"].astype(object).where(df.index != 3, "n/a")), "row 3 has 'n/a'"),
        (lambda df: df.assign(value=np.where(df.index == 2, np.inf, df["value"])), "finite numbers"),
    ],
)
def test_bad_tables_raise_one_clear_error(change, message):
    with pytest.raises(v.VerdictInputError, match=message):
        v.verdict_table(change(one_comparison([0.01] * 6)), reference="ref")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "adamw"}, r"'adamw' is not among the arms \['ref', 'awd'\]"),
        ({"min_effect": 0.0}, "min_effect must be a fraction in"),
        ({"min_effect": 1.5}, "min_effect must be a fraction in"),
        ({"alpha": 0.5}, r"alpha must be a number in \(0, 0.5\)"),
        ({"adjust": "bonferroni"}, "adjust must be one of"),
        ({"by": ("label_noise",)}, r"missing columns \['label_noise'\]"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs, message):
    with pytest.raises(v.VerdictInputError, match=message):
        v.verdict_table(one_comparison([0.01] * 6), **{"reference": "ref", **kwargs})
    assert issubclass(v.VerdictInputError, ValueError)


def test_two_level_interval_centre_width_and_seed():
    rng = np.random.default_rng(9)
    ref = rng.random((5, 3000)) < 0.7
    assert v.two_level_interval(ref, ref.copy()) == (0.0, 0.0)
    twin = rng.random((5, 3000)) < 0.7  # identical in distribution
    low, high = v.two_level_interval(twin, ref)
    assert low < 0 < high and abs(low + high) / 2 < (high - low) / 4
    assert v.two_level_interval(twin, ref) == (low, high)  # seeded
    # no seed noise (every seed the same row): the width is that of a paired binomial difference
    arm_row, ref_row = rng.random(4000) < 0.75, rng.random(4000) < 0.7
    diff = arm_row.astype(float) - ref_row
    se = diff.std() / math.sqrt(len(diff))
    low, high = v.two_level_interval(np.tile(arm_row, (4, 1)), np.tile(ref_row, (4, 1)))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert (low + high) / 2 == pytest.approx(diff.mean(), abs=se / 3)


def test_pack_and_unpack_correctness_round_trip():
    rng = np.random.default_rng(10)
    for n in (0, 1, 7, 8, 9, 1000):
        bools = rng.random(n) < 0.5
        text = v.pack_correct(bools)
        assert isinstance(text, str) and len(text) <= 4 * math.ceil(math.ceil(n / 8) / 3)
        assert np.array_equal(v.unpack_correct(text, n), bools)
    with pytest.raises(ValueError, match="cannot be 20"):
        v.unpack_correct(v.pack_correct(np.ones(9, bool)), 20)


def test_importable_without_torch_or_matplotlib():
    code = "import sys, analysis.verdicts; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
