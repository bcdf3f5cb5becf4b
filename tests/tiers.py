"""The test tiers, and the check that keeps the fast one fast.

A test that is slow says why with a marker (registered in ``pyproject.toml``): ``slow`` (fresh processes,
long loops), ``classic`` (a JVM), ``browser`` (headless Chromium), ``dist`` (builds the wheel or the zip),
``gpu`` (a CUDA device). ``make test`` (``pytest --fast``) runs the tests with none of them; ``make test-all``
runs everything. ``-m "not classic"`` and the like work as usual.

An unmarked test whose own time is over :data:`BUDGET_S` fails the fast tier's run: its setup, call and
teardown, less the setup of fixtures it shares with other tests (session-, package-, module- or class-scoped:
their cost is paid once and listed apart in the summary, so the first test to use one is not charged for it).
The full run (``make test-all``, CI) lists such tests and passes: there a test's time says how fast the machine
is, not whether the tests are right (CI once failed a run of 789 passing tests on a machine 1.4x slower than
the one the budget was set on). ``LAION_SPARK_TEST_BUDGET_S`` changes the budget.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

#: Markers that take a test out of the fast tier, each naming why it is slow.
TIER_MARKERS = ("slow", "classic", "browser", "dist", "gpu")
#: Seconds an unmarked test may take (``LAION_SPARK_TEST_BUDGET_S`` overrides it).
BUDGET_S = 10.0


def is_marked(item: pytest.Item) -> bool:
    """Whether a test carries one of the :data:`TIER_MARKERS`."""
    return any(item.get_closest_marker(name) for name in TIER_MARKERS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", help=f"the fast tier: no test marked {', '.join(TIER_MARKERS)}")


def pytest_configure(config: pytest.Config) -> None:
    budget = float(os.environ.get("LAION_SPARK_TEST_BUDGET_S", BUDGET_S))
    config.pluginmanager.register(TierBudget(budget, fast=config.getoption("fast")), "tier-budget")


@dataclass(eq=False)  # a plugin object: hashed by identity
class TierBudget:
    """Times each test's own work and the shared fixtures' setup; lists the unmarked tests over the budget, and
    fails the fast tier's session for them."""

    budget_s: float
    #: The fast tier's run (``--fast``): marked tests are deselected and an unmarked one over the budget fails it.
    fast: bool
    own: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    shared: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    marked: set[str] = field(default_factory=set)
    _shared_in_test: float = 0.0

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
        started = time.perf_counter()
        yield
        if fixturedef.scope != "function":
            took = time.perf_counter() - started
            self._shared_in_test += took
            self.shared[f"{fixturedef.argname} ({fixturedef.scope})"] += took

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not self.fast:
            return
        slow = [item for item in items if is_marked(item)]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not is_marked(item)]

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._shared_in_test = 0.0
        if is_marked(item):
            self.marked.add(item.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:
            return
        took = report.duration - (self._shared_in_test if report.when == "setup" else 0.0)
        self.own[report.nodeid] += max(took, 0.0)

    def over_budget(self) -> list[tuple[str, float]]:
        """Unmarked tests over the budget, slowest first."""
        over = [(node, s) for node, s in self.own.items() if node not in self.marked and s > self.budget_s]
        return sorted(over, key=lambda pair: -pair[1])

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.shared:
            terminalreporter.section("shared fixtures (setup, paid once)")
            for name, seconds in sorted(self.shared.items(), key=lambda pair: -pair[1])[:8]:
                terminalreporter.write_line(f"{seconds:8.2f} s  {name}")
        over = self.over_budget()
        if over:
            terminalreporter.section("unmarked tests over the fast tier's budget", red=self.fast, yellow=not self.fast)
            terminalreporter.write_line(
                f"each took more than {self.budget_s:g} s: make it faster, or mark why it is slow "
                f"({', '.join(TIER_MARKERS)})"
            )
            for node, seconds in over:
                terminalreporter.write_line(f"{seconds:8.2f} s  {node}")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.fast and self.over_budget() and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
