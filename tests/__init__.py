"""The test suite. Hypothesis' per-example deadline is off for every property test: on a
loaded two-core CI machine an example's wall time says nothing about the property under test
(speed is measured in bench/, against baselines in the same run), and a deadline there only
made the suite flaky."""

from hypothesis import settings

settings.register_profile("edge", deadline=None)
settings.load_profile("edge")
