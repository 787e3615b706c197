"""Test configuration: the fixture plug-ins under `helpers/` and the `slow` marker for tests that build
or train a model. Tests mirror the package (`tests/judging/` holds the tests of `medsafetybench.judging`,
and so on); `tests/helpers/` is the one place for shared helpers, and no test imports another."""

import pytest

pytest_plugins = [
    "helpers.fixtures_openai",
    "helpers.fixtures_hf",
    "helpers.fixtures_ray",
    "helpers.fixtures_classifiers",
]

#: Fixtures that build or train a model (or start a Ray cluster): a test that uses one is `slow`, so
#: `make test-fast` (`pytest -m "not slow"`) leaves it out of the edit loop.
SLOW_FIXTURES = frozenset({"tiny_model_dir", "tiny_adapter_dir", "verdict_model_dir", "ray_cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a model-building fixture as slow."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
