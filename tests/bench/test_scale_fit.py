"""The arithmetic of bench/scale.py: cost exponents, the driver-memory flag, the sizes (no engine, no data)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.scale import MEMORY_SLACK, fit_exponent, fits, memory_growth, sizes_for

ROWS = [500_000, 1_000_000, 2_000_000, 4_000_000]


@pytest.mark.parametrize("k", [0.5, 1.0, 1.3, 2.0])
def test_fit_exponent_recovers_the_power_of_an_exact_power_law(k: float) -> None:
    costs = [3e-6 * n**k for n in ROWS]
    assert fit_exponent(ROWS, costs) == pytest.approx(k, abs=1e-9)


def test_fit_exponent_of_linear_cost_plus_a_fixed_overhead_is_below_one() -> None:
    costs = [2.0 + n / 1e6 for n in ROWS]
    assert 0.3 < fit_exponent(ROWS, costs) < 0.6


def test_fit_exponent_of_n_log_n_cost_stays_within_the_linear_limit_at_these_sizes() -> None:
    costs = [n * np.log(n) for n in ROWS]
    assert 1.0 < fit_exponent(ROWS, costs) < 1.15


def test_fit_exponent_is_the_least_squares_slope_when_points_scatter() -> None:
    costs = [1.0, 2.2, 3.9, 8.4]
    slope = np.polyfit(np.log(ROWS), np.log(costs), 1)[0]
    assert fit_exponent(ROWS, costs) == pytest.approx(slope)


@pytest.mark.parametrize(
    ("rows", "costs"), [([1_000_000], [1.0]), ([1e6, 1e6], [1.0, 2.0]), (ROWS, [1.0, 0.0, 2.0, 3.0])]
)
def test_fit_exponent_refuses_a_single_size_or_a_cost_that_is_not_positive(rows: list, costs: list) -> None:
    with pytest.raises(ValueError):
        fit_exponent(rows, costs)


def test_memory_growth_flags_a_driver_that_holds_eight_bytes_per_row() -> None:
    base = 700 << 20
    per_row, grows = memory_growth(ROWS, [base + 8 * n for n in ROWS])
    assert per_row == pytest.approx(8.0)
    assert grows


def test_memory_growth_does_not_flag_flat_memory_with_noise_below_the_slack() -> None:
    peaks = [p + (700 << 20) for p in (3 << 20, 0, 5 << 20, 1 << 20)]
    per_row, grows = memory_growth(ROWS, peaks)
    assert not grows
    assert abs(per_row) * (ROWS[-1] - ROWS[0]) < MEMORY_SLACK


def test_memory_growth_does_not_flag_memory_that_shrinks_as_rows_grow() -> None:
    assert not memory_growth(ROWS, [(900 - 50 * i) << 20 for i in range(len(ROWS))])[1]


def test_memory_growth_flags_growth_just_above_the_slack_and_not_just_below() -> None:
    span = ROWS[-1] - ROWS[0]
    assert memory_growth(ROWS, [n * (MEMORY_SLACK * 1.01 / span) for n in ROWS])[1]
    assert not memory_growth(ROWS, [n * (MEMORY_SLACK * 0.99 / span) for n in ROWS])[1]


def _result(stage: str, rows: int, seconds: float, growth: int) -> dict:
    return {
        "stage": stage,
        "rows": rows,
        "seconds": seconds,
        "driver_cpu_s": seconds / 4,
        "engine_cpu_s": seconds,
        "driver_rss_start": 800 << 20,
        "driver_rss_peak": (800 << 20) + growth,
    }


def test_fits_give_each_stage_its_exponents_and_flag_only_the_collecting_stage() -> None:
    results = [_result("join", n, n / 1e6, 1 << 20) for n in ROWS]
    results += [_result("collect", n, (n / 1e6) ** 1.5, 16 * n) for n in ROWS]
    fitted = fits(results)
    assert list(fitted) == ["join", "collect"]
    assert fitted["join"]["k_wall"] == pytest.approx(1.0)
    assert fitted["join"]["k_cpu"] == pytest.approx(1.0)
    assert not fitted["join"]["driver_memory_grows"]
    assert fitted["collect"]["k_wall"] == pytest.approx(1.5)
    assert fitted["collect"]["k_wall_top"] == pytest.approx(1.5)
    assert fitted["collect"]["driver_bytes_per_row"] == pytest.approx(16.0)
    assert fitted["collect"]["driver_memory_grows"]


def test_fits_count_the_driver_cpu_alone_when_the_engine_runs_inside_it() -> None:
    results = [{**_result("score", n, 1.0, 0), "driver_cpu_s": n / 1e6, "engine_cpu_s": None} for n in ROWS]
    assert fits(results)["score"]["k_cpu"] == pytest.approx(1.0)


def test_sizes_halve_down_from_the_largest_in_whole_parts() -> None:
    assert sizes_for(4_000_000, 4, 250_000) == [500_000, 1_000_000, 2_000_000, 4_000_000]
    assert sizes_for(3_000_000, 3, 250_000) == [750_000, 1_500_000, 3_000_000]


@pytest.mark.parametrize(("max_rows", "count"), [(4_100_000, 4), (500_000, 4), (100_000, 3)])
def test_sizes_refuse_a_largest_size_off_the_part_grid_or_too_few_sizes(max_rows: int, count: int) -> None:
    with pytest.raises(SystemExit):
        sizes_for(max_rows, count, 250_000)
