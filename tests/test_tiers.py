"""The tiers' markers are the ones pyproject.toml registers, and the budget check fails the fast tier for an
unmarked slow test (the full run lists it)."""

from __future__ import annotations

import tomllib

import pytest
from conftest import REPO
from tiers import TIER_MARKERS

pytest_plugins = ["pytester"]


def test_every_tier_marker_is_registered_and_nothing_else() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    registered = [line.split(":")[0] for line in config["tool"]["pytest"]["ini_options"]["markers"]]
    assert sorted(registered) == sorted(TIER_MARKERS)


@pytest.mark.parametrize(
    ("args", "passed", "ret"),
    [(["--fast"], 2, pytest.ExitCode.TESTS_FAILED), ([], 3, pytest.ExitCode.OK)],
    ids=["fast-tier-fails", "full-run-lists"],
)
def test_an_unmarked_test_over_the_budget_is_listed_and_fails_the_fast_tier_and_a_marked_one_is_not(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], passed: int, ret: pytest.ExitCode
) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    monkeypatch.setenv("LAION_SPARK_TEST_BUDGET_S", "0.2")
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.fixture(scope="module")
        def shared():
            time.sleep(0.3)  # paid once: not charged to the test that first uses it

        def test_quick(shared):
            pass

        def test_unmarked_and_slow():
            time.sleep(0.3)

        @pytest.mark.slow
        def test_marked_and_slow():
            time.sleep(0.3)
        """
    )
    result = pytester.runpytest("-p", "tiers", *args)
    result.assert_outcomes(passed=passed, deselected=3 - passed)
    assert result.ret == ret
    over = result.stdout.str().split("over the fast tier's budget")[1]
    assert "test_unmarked_and_slow" in over and "test_quick" not in over and "test_marked_and_slow" not in over


def test_fast_deselects_every_marked_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n    classic: classic\n")
    pytester.makepyfile(
        """
        import pytest

        def test_fast():
            pass

        @pytest.mark.slow
        def test_slow():
            pass

        @pytest.mark.classic
        def test_jvm():
            pass
        """
    )
    result = pytester.runpytest("-p", "tiers", "--fast")
    result.assert_outcomes(passed=1, deselected=2)
