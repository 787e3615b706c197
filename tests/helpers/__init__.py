"""Test helpers: pytest fixture plug-ins (`fixtures_*`, listed in `tests/conftest.py`) and plain
modules the tests import (`cli`, `judges`, `reference`, `medqa`, `sweep`, `paths`). Tests never import
other tests."""
