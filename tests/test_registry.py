"""The generic name registry: decorator, built-in table, entry points, modules found by name."""

from __future__ import annotations

import sys

import pytest

from medsafetybench.errors import UserError
from medsafetybench.registry import Registry


def make_plugin(tmp_path, group: str, name: str, module: str, cls: str) -> None:
    """An installed distribution on sys.path: a dist-info folder with entry_points.txt, and its module."""
    (tmp_path / f"{module}.py").write_text(f"class {cls}:\n    OPTIONS = frozenset()\n")
    dist = tmp_path / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}:{cls}\n")


def test_table_entries_are_imported_on_first_use():
    table = {"ordered": "collections:OrderedDict"}
    reg = Registry("thing", table, "medsafetybench.test_things")
    import collections

    assert reg.known("ordered") and reg.known("ORDERED ") and not reg.known("nope")
    assert reg.get("Ordered") is collections.OrderedDict
    assert reg.names() == ["ordered"]


def test_decorator_registers_and_unknown_names_list_the_choices():
    reg = Registry("widget", {}, "medsafetybench.test_widgets")

    @reg.register("spinner")
    class Spinner:
        pass

    assert reg.get("spinner") is Spinner
    assert reg.table["spinner"].endswith(
        ":test_decorator_registers_and_unknown_names_list_the_choices.<locals>.Spinner"
    )
    with pytest.raises(UserError, match=r"unknown widget 'nope'; use one of spinner"):
        reg.get("nope")
    reg.unregister("spinner")
    with pytest.raises(ValueError):
        reg.register("Bad Name!")


def test_entry_point_plugins_are_found(tmp_path, monkeypatch):
    make_plugin(tmp_path, "medsafetybench.test_plugins", "shiny", "shiny_plugin_mod", "Shiny")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("plug-in", {}, "medsafetybench.test_plugins")
    assert "shiny" in reg.names() and reg.known("shiny")
    assert reg.get("shiny").__name__ == "Shiny"
    sys.modules.pop("shiny_plugin_mod", None)


def test_a_broken_table_entry_is_a_user_error():
    reg = Registry("thing", {"gone": "medsafetybench.no_such_module:X", "noattr": "collections:NoSuch"}, "g")
    with pytest.raises(UserError, match="cannot be imported"):
        reg.get("gone")
    with pytest.raises(UserError, match="no attribute"):
        reg.get("noattr")
