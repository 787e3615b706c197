"""The price table: shipped entries, lookups (priced / local / unknown), user overrides and bad files."""

from __future__ import annotations

import pytest

from medsafetybench.cost.pricing import LOCAL, PRICED, UNKNOWN, fmt_usd, load_prices
from medsafetybench.errors import UserError


def test_shipped_table_prices_the_paper_judge_and_claude_models() -> None:
    table = load_prices()
    judge = table.lookup("llm:openai:gpt-3.5-turbo-0125|msb-judge-v1")
    assert judge.status == PRICED and (judge.price.input, judge.price.output) == (0.50, 1.50)
    assert judge.price.as_of and judge.price.batch == 0.5
    # 1M prompt + 100k completion tokens: 0.50 + 0.15 = $0.65 live, half in a batch
    assert judge.cost(1_000_000, 100_000) == pytest.approx(0.65)
    assert judge.cost(1_000_000, 100_000, batch=True) == pytest.approx(0.325)
    alias = table.lookup("openai:gpt-4o-mini")
    assert alias.price is table.lookup("openai:gpt-4o-mini-2024-07-18").price
    assert alias.price.cached_input == 0.075
    claude = table.lookup("anthropic:claude-3-5-haiku-20241022")
    assert (claude.price.input, claude.price.output, claude.price.batch) == (0.80, 4.00, 0.5)
    assert table.lookup("anthropic:claude-opus-4-20250514").price.output == 75.0


@pytest.mark.parametrize(
    "spec",
    [
        "hf:/models/llama",
        "vllm:/models/x",
        "openai:m@http://127.0.0.1:8000/v1",
        "openai:m@http://localhost:8000/v1",
        "openai:m@http://10.1.2.3/v1",
    ],
)
def test_local_models_have_no_api_price(spec: str) -> None:
    found = load_prices().lookup(spec)
    assert found.status == LOCAL and found.cost(10**6, 10**6) == 0.0
    assert found.label() == "local (no API price)"


@pytest.mark.parametrize("spec", ["openai:gpt-99", "anthropic:claude-9", "openai:gpt-4o@https://api.together.xyz/v1"])
def test_unpriced_api_models_are_unknown_never_zero(spec: str) -> None:
    found = load_prices().lookup(spec)
    assert found.status == UNKNOWN and found.cost(10, 10) is None and found.label() == "unknown"
    assert "prices file" in found.reason
    assert fmt_usd(found.cost(10, 10), found.status) == "unknown"


def test_user_file_overrides_and_adds_entries(tmp_path, monkeypatch) -> None:
    f = tmp_path / "prices.toml"
    f.write_text(
        '[openai."gpt-4o-mini"]\ninput = 1.0\noutput = 2.0\nas_of = "2026-12"\n\n'
        '[openai."my-model@http://127.0.0.1:9000/v1"]\ninput = 3\noutput = 4\n',
        encoding="utf-8",
    )
    table = load_prices(f)
    assert table.lookup("openai:gpt-4o-mini").price.input == 1.0
    assert table.lookup("openai:gpt-4o-mini-2024-07-18").price.input == 0.15  # the snapshot entry stays
    endpoint = table.lookup("openai:my-model@http://127.0.0.1:9000/v1")
    assert endpoint.status == PRICED and endpoint.price.output == 4.0 and endpoint.price.batch == 1.0
    monkeypatch.setenv("MEDSAFETY_PRICES", str(f))
    assert load_prices().lookup("openai:gpt-4o-mini").price.input == 1.0
    assert load_prices().files == ("shipped", str(f))


@pytest.mark.parametrize(
    "text, line, words",
    [
        ('[openai."m"]\ninput = 1\noutput = \n', 3, "not valid TOML"),
        ('[openai."m"]\ninput = 1\n', 1, "needs 'output'"),
        ('# c\n[openai."m"]\ninput = 1\noutput = "cheap"\n', 4, "'output'"),
        ('[openai."m"]\ninput = -1\noutput = 1\n', 2, "'input'"),
        ('[openai."m"]\ninput = 1\noutput = 1\nprice = 3\n', 4, "unknown key 'price'"),
        ('[google."m"]\ninput = 1\noutput = 1\n', 1, "unknown table [google]"),
    ],
)
def test_bad_price_file_is_one_line_naming_file_and_line(tmp_path, text: str, line: int, words: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as exc:
        load_prices(f)
    msg = str(exc.value)
    assert msg.startswith(f"{f}:{line}:") and words in msg and "\n" not in msg


def test_missing_price_file_names_the_option(tmp_path, monkeypatch) -> None:
    with pytest.raises(UserError, match="--prices .*no such file"):
        load_prices(tmp_path / "nope.toml")
    monkeypatch.setenv("MEDSAFETY_PRICES", str(tmp_path / "gone.toml"))
    with pytest.raises(UserError, match=r"\$MEDSAFETY_PRICES .*gone.toml"):
        load_prices()


def test_fmt_usd() -> None:
    assert fmt_usd(12.345) == "$12.35" and fmt_usd(0.0123) == "$0.012" and fmt_usd(0.0) == "$0.00"
    assert fmt_usd(None) == "unknown" and fmt_usd(0.0, LOCAL) == "local"
