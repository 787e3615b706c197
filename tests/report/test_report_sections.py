"""Section providers: registration, the module hook, key and name checks."""

import sys
import types

import pytest

from medsafetybench.report import sections as sec


def test_register_and_order(tmp_path):
    def p1(store, runs):
        return [sec.Section("b", "B", order=60)]

    def p2(store, runs):
        return [sec.Section("a", "A", order=50)]

    def empty(store, runs):
        return []

    for p in (p1, p2, empty, p1):
        sec.register_section_provider(p)
    try:
        assert [s.key for s in sec.extra_sections(None, [])] == ["a", "b"]
    finally:
        for p in (p1, p2, empty):
            sec.unregister_section_provider(p)
    assert sec.extra_sections(None, []) == []


def test_module_hook(monkeypatch):
    mod = types.ModuleType("msb_test_sections")
    mod.report_sections = lambda store, runs: [sec.Section("ft", "Fine-tuning", [sec.Paragraph(str(len(runs)))])]
    monkeypatch.setitem(sys.modules, "msb_test_sections", mod)
    monkeypatch.setattr(sec, "SECTION_MODULES", ["msb_test_sections", "medsafetybench.not_built_yet.report"])
    [s] = sec.extra_sections(None, [1, 2])
    assert s.key == "ft" and s.blocks == [sec.Paragraph("2")]


def test_duplicate_keys_and_bad_names():
    def p(store, runs):
        return [sec.Section("x", "X"), sec.Section("x", "Y")]

    sec.register_section_provider(p)
    try:
        with pytest.raises(ValueError, match="share a key"):
            sec.extra_sections(None, [])
    finally:
        sec.unregister_section_provider(p)
    with pytest.raises(ValueError, match="section key"):
        sec.Section("Bad Key", "t")
