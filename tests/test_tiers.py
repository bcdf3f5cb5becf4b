"""The tiers' markers are the ones pyproject.toml registers, and the budget check fails an unmarked slow test."""

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


def test_an_unmarked_test_over_the_budget_fails_the_run_and_a_marked_one_does_not(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
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
    result = pytester.runpytest("-p", "tiers")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
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
