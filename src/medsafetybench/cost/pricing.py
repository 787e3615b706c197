"""The price table: what a token costs on each API model, shipped as `prices.toml`, dated, overridable.

A price is USD per million tokens for input, output and (where the provider has one) cached input, plus
the batch API's multiplier, with the month it was checked (`as_of`) and where (`source`). The shipped
table covers the OpenAI and Anthropic models the docs name; a user file (`--prices FILE`, else
$MEDSAFETY_PRICES) in the same format adds models or replaces shipped entries, one whole entry at a time.

Looking a model up gives one of three answers, never a silent 0:

- `priced`: an `openai:` model on api.openai.com or an `anthropic:` model that the table lists (by name or
  alias), or any spec whose `name@BASE_URL` the user's file lists;
- `local`: weights run on your own machines (`hf:`, `vllm:`, any plug-in backend) or an HTTP endpoint on
  this machine or a private network (`openai:m@http://localhost:8000/v1`): no API price; counted as $0
  towards `--max-cost`;
- `unknown`: an API model the table does not list, or a third-party endpoint: shown as "unknown", and
  `--max-cost` refuses to run it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UserError

PRICES_ENV = "MEDSAFETY_PRICES"
PROVIDERS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}
"""Backends priced by the table, and the host of each provider's own API."""
_ENTRY_KEYS = {"input", "output", "cached_input", "batch", "as_of", "aliases", "source"}
_PER = 1_000_000

PRICED, LOCAL, UNKNOWN = "priced", "local", "unknown"


@dataclass(frozen=True)
class Price:
    """What one model's tokens cost, in USD per million tokens."""

    provider: str
    """`openai` or `anthropic` (the table that holds the entry)."""
    model: str
    """The entry's name (a model name, or `name@BASE_URL` from a user file)."""
    input: float
    output: float
    cached_input: float | None = None
    """Price of a cached prompt token; None where the provider has no prompt cache for the model."""
    batch: float = 1.0
    """Multiplier on every price through the batch API (0.5: half price); 1.0 where there is none."""
    as_of: str = ""
    """When the price was checked (YYYY-MM or YYYY-MM-DD)."""
    source: str = ""
    """Where it was checked: a URL, or the user file that set it."""

    def cost(self, prompt_tokens: float, completion_tokens: float, *, batch: bool = False) -> float:
        """USD for these tokens (prompt tokens at the full input price: the store keeps no cache hits)."""
        usd = (prompt_tokens * self.input + completion_tokens * self.output) / _PER
        return usd * self.batch if batch else usd


@dataclass(frozen=True)
class PriceLookup:
    """The answer for one model: `priced` with its `Price`, `local` or `unknown`, and why."""

    status: str
    price: Price | None = None
    reason: str = ""

    @property
    def known(self) -> bool:
        """True when a cost can be computed (priced, or local at $0)."""
        return self.status != UNKNOWN

    def cost(self, prompt_tokens: float, completion_tokens: float, *, batch: bool = False) -> float | None:
        """USD for these tokens: 0.0 for a local model, None when the price is unknown."""
        if self.status == LOCAL:
            return 0.0
        if self.price is None:
            return None
        return self.price.cost(prompt_tokens, completion_tokens, batch=batch)

    def label(self) -> str:
        """How the price is shown: `$0.15/$0.60 per 1M (2025-08)`, `local (no API price)` or `unknown`."""
        if self.status == LOCAL:
            return "local (no API price)"
        if self.price is None:
            return "unknown"
        p = self.price
        return f"{per_million(p.input)} in / {per_million(p.output)} out per 1M tokens (as of {p.as_of or '?'})"


def per_million(usd: float) -> str:
    """A price per 1M tokens: `$0.15`, `$0.075`."""
    return f"${usd:.2f}" if round(usd * 100, 6).is_integer() else f"${usd:g}"


def fmt_usd(usd: float | None, status: str = PRICED) -> str:
    """`$12.34`, `$0.123`, `$0.0012` (amounts under a dollar keep 2-3 significant digits), `local` or `unknown`."""
    if status == LOCAL:
        return "local"
    if usd is None:
        return "unknown"
    if usd == 0:
        return "$0.00"
    if usd < 0.01:
        return f"${usd:.2g}" if usd >= 1e-6 else "<$0.000001"
    return f"${usd:,.2f}" if usd >= 1 else f"${usd:.3f}"


class PriceTable:
    """Prices by provider and model name (aliases included), plus `name@BASE_URL` entries."""

    def __init__(self, entries: dict[tuple[str, str], Price], files: tuple[str, ...] = ()) -> None:
        self.entries = entries
        self.files = files
        """Where the prices came from: `shipped` and any user file, in the order applied."""

    def lookup(self, spec_or_identity: str) -> PriceLookup:
        """The price of a model named by its spec or identity (a judge identity `llm:SPEC|version` too).

        Args:
            spec_or_identity: e.g. `openai:gpt-4o-mini`, `anthropic:claude-3-5-haiku-20241022`,
                `llm:openai:gpt-3.5-turbo-0125|msb-judge-v1`, `hf:/models/x`, `openai:m@http://127.0.0.1:8/v1`.

        Returns:
            priced, local or unknown (with the reason).
        """
        text = spec_or_identity.strip()
        if text.startswith("llm:"):
            text = text[4:]
        text = text.split("|", 1)[0]
        backend, sep, rest = text.partition(":")
        backend = backend.lower()
        if not sep or backend not in PROVIDERS:
            return PriceLookup(LOCAL, reason=f"{backend or text}: weights run locally")
        name, _, url = rest.partition("@")
        if url:
            entry = self.entries.get((backend, f"{name}@{url.rstrip('/')}"))
            if entry is not None:
                return PriceLookup(PRICED, entry)
            host = (urlsplit(url).hostname or "").lower()
            if _is_local_host(host):
                return PriceLookup(LOCAL, reason=f"{host} is a local endpoint")
            if host != PROVIDERS[backend] and not host.endswith("." + PROVIDERS[backend].split(".", 1)[1]):
                return PriceLookup(
                    UNKNOWN,
                    reason=f"{host} is not {PROVIDERS[backend]}: give its price as "
                    f'[{backend}."{name}@{url}"] in a prices file',
                )
        entry = self.entries.get((backend, name))
        if entry is not None:
            return PriceLookup(PRICED, entry)
        return PriceLookup(
            UNKNOWN,
            reason=f"{backend}:{name} is not in the price table: add it to a prices file (--prices or ${PRICES_ENV})",
        )


def _is_local_host(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost") or host.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


class _Lines:
    """Line numbers of tables and keys in a TOML text, for error messages (first match wins)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of(self, provider: str, model: str | None = None, key: str | None = None) -> int:
        header = re.compile(
            r"^\[\s*"
            + re.escape(provider)
            + (
                r"\s*\.\s*(\"" + re.escape(model) + r"\"|'" + re.escape(model) + "'|" + re.escape(model) + r")\s*\]"
                if model is not None
                else r"\s*\]"
            )
        )
        start = next((i for i, line in enumerate(self.lines) if header.match(line.strip())), None)
        if start is None:
            return 1
        if key is None:
            return start + 1
        for i in range(start + 1, len(self.lines)):
            s = self.lines[i].strip()
            if s.startswith("["):
                break
            if re.match(re.escape(key) + r"\s*=", s):
                return i + 1
        return start + 1


def parse_prices(text: str, origin: str) -> dict[tuple[str, str], Price]:
    """Parse a prices file (the shipped one or a user's) into entries keyed by (provider, name/alias).

    Raises:
        UserError: `ORIGIN:LINE: what is wrong` for a TOML syntax error, an unknown provider or key, or a
            price that is not a non-negative number.
    """
    lines = _Lines(text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise UserError(f"{origin}:{m.group(1) if m else 1}: not valid TOML ({exc})") from None
    out: dict[tuple[str, str], Price] = {}
    for provider, table in raw.items():
        if provider not in PROVIDERS or not isinstance(table, dict):
            raise UserError(
                f"{origin}:{lines.of(provider)}: unknown table [{provider}]; prices are given as "
                f'[openai."MODEL"] or [anthropic."MODEL"]'
            )
        source = table.get("source", "")
        if not isinstance(source, str):
            raise UserError(f"{origin}:{lines.of(provider, None, 'source')}: source must be a string")
        for model, entry in table.items():
            if model == "source":
                continue
            where = lines.of(provider, model)
            if not isinstance(entry, dict):
                raise UserError(
                    f'{origin}:{where}: {provider}.{model} must be a table [{provider}."{model}"] '
                    "with input and output prices"
                )
            for key in entry:
                if key not in _ENTRY_KEYS:
                    raise UserError(
                        f"{origin}:{lines.of(provider, model, key)}: unknown key '{key}' in "
                        f'[{provider}."{model}"]; use {", ".join(sorted(_ENTRY_KEYS))}'
                    )
            for key in ("input", "output"):
                if key not in entry:
                    raise UserError(f"{origin}:{where}: [{provider}.\"{model}\"] needs '{key}' (USD per 1M tokens)")
            values = {}
            for key in ("input", "output", "cached_input", "batch"):
                v = entry.get(key)
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise UserError(
                        f"{origin}:{lines.of(provider, model, key)}: '{key}' in "
                        f'[{provider}."{model}"] must be a number >= 0 (USD per 1M tokens'
                        f"{'; batch is a multiplier, e.g. 0.5' if key == 'batch' else ''})"
                    )
                values[key] = float(v)
            aliases = entry.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise UserError(f"{origin}:{lines.of(provider, model, 'aliases')}: aliases must be a list of names")
            as_of = entry.get("as_of", "")
            price = Price(
                provider,
                model,
                values["input"],
                values["output"],
                values.get("cached_input"),
                values.get("batch", 1.0),
                str(as_of),
                str(entry.get("source") or source or origin),
            )
            for name in (model, *aliases):
                out[(provider, name.rstrip("/"))] = price
    return out


@lru_cache(maxsize=1)
def _shipped() -> dict[tuple[str, str], Price]:
    text = resources.files("medsafetybench.cost").joinpath("prices.toml").read_text(encoding="utf-8")
    return parse_prices(text, "prices.toml (shipped)")


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The shipped table with a user file applied on top (`path`, else $MEDSAFETY_PRICES, else none).

    Raises:
        UserError: the user file does not exist or is malformed (`FILE:LINE: what`).
    """
    entries = dict(_shipped())
    files = ["shipped"]
    chosen = path if path is not None else (os.environ.get(PRICES_ENV) or None)
    if chosen is not None:
        p = Path(chosen).expanduser()
        how = "--prices" if path is not None else f"${PRICES_ENV}"
        if not p.is_file():
            raise UserError(f"{how} {p}: no such file (a TOML price table: see docs/cost.md)")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{how} {p}: cannot read it ({exc})") from None
        entries.update(parse_prices(text, str(p)))
        files.append(str(p))
    return PriceTable(entries, tuple(files))
