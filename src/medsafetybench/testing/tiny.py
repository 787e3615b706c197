"""A tiny Llama built on the spot: the model tests, demos and benchmarks run on, with no downloads.

`build_tiny_llama(out_dir)` trains a ~1k-token byte-level BPE tokenizer with the `tokenizers` library on
a synthetic, benign corpus (medical sentences, polite refusals, question/answer lines in the chat and
Alpaca formats), wraps it as a `PreTrainedTokenizerFast` with `<s>`/`</s>`/`<pad>`/`<unk>` and a small
Jinja chat template, builds a `LlamaForCausalLM` (hidden 64, 2 layers, 4 heads), pre-trains it for a
few hundred CPU steps and saves both with `save_pretrained`, so it loads through the very
`from_pretrained` path users take for real models. The same seed gives the same files.

The pre-training makes the model speak the corpus' language (including refusal sentences), so a LoRA
adapter can teach it to refuse in a few dozen steps. `ensure_tiny_llama()` builds it once into the
cache (`default_tiny_model_dir()`) and reuses it; the build goes to a temporary directory that is
renamed into place, so a half-built model is never used.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import require

TINY_VERSION = "tiny-llama-v1"
MARKER = "medsafetybench-tiny.json"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", *ROLE_TOKENS)

# bos, then one "<|role|>\ncontent\n" block per message (assistant turns end with eos), then the
# assistant marker when a generation prompt is asked for.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

ALPACA_PREFIX = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n"
)

_CONDITIONS = [
    "asthma",
    "diabetes",
    "hypertension",
    "migraine",
    "influenza",
    "anemia",
    "eczema",
    "arthritis",
    "pneumonia",
    "bronchitis",
    "a sprained ankle",
    "a common cold",
    "gout",
    "high cholesterol",
    "insomnia",
    "dehydration",
    "a urinary tract infection",
    "acne",
]
_TREATMENTS = [
    "rest and fluids",
    "regular exercise",
    "a balanced diet",
    "an inhaler",
    "insulin",
    "physical therapy",
    "a doctor's review",
    "over-the-counter pain relief as directed",
    "a follow-up visit",
    "good sleep habits",
    "moisturising cream",
    "prescribed antibiotics",
]
_PROFESSIONALS = ["doctor", "nurse", "pharmacist", "physician", "clinician", "general practitioner"]
_ADVICE = [
    "wash your hands often",
    "drink enough water",
    "take medicines as prescribed",
    "keep a record of your symptoms",
    "ask a pharmacist about side effects",
    "book regular check-ups",
    "stay active every day",
    "get enough sleep",
]
_REFUSALS = [
    "I'm sorry, but I cannot help with that request because it would be unethical and could harm patients.",
    "I'm sorry, but I cannot assist with that request because it would violate medical ethics.",
    "I cannot help with that request. It would be unethical and unsafe, and it goes against the duty "
    "of a physician to protect patients.",
    "I'm sorry, but I must decline. That request would be unethical because it could put people at risk.",
    "I cannot provide that. It would break patient confidentiality and the principles of medical ethics.",
    "I'm sorry, but I won't help with that. Please speak with a licensed professional instead.",
]
_USER_OPENERS = ["What is", "How do I manage", "What helps with", "Can you explain", "Tell me about"]


def _corpus(rng: random.Random, n_lines: int) -> list[str]:
    """Benign synthetic text in the shapes the model will later see."""
    lines: list[str] = []
    for _ in range(n_lines):
        c, t, p = rng.choice(_CONDITIONS), rng.choice(_TREATMENTS), rng.choice(_PROFESSIONALS)
        a, r = rng.choice(_ADVICE), rng.choice(_REFUSALS)
        q = f"{rng.choice(_USER_OPENERS)} {c}?"
        answer = f"{c.capitalize()} is often managed with {t}. Please talk to your {p} and {a}."
        kind = rng.randrange(7)
        if kind == 0:
            lines.append(f"Patients with {c} often benefit from {t}. A {p} can help them {a}.")
        elif kind == 1:
            lines.append(r)
        elif kind == 2:
            lines.append(f"Question: {q}\nAnswer: {answer}")
        elif kind == 3:
            lines.append(f"<|user|>\n{q}\n<|assistant|>\n{answer}")
        elif kind == 4:
            lines.append(f"{ALPACA_PREFIX}{q}\n\n### Response:\n{answer}")
        elif kind == 5:
            lines.append(f"<|user|>\nPlease help me with this request.\n<|assistant|>\n{r}")
        else:
            lines.append(f"{ALPACA_PREFIX}Please help me with this request.\n\n### Response:\n{r}")
    return lines


def _build_tokenizer(corpus: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=2048,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_tokenizer(
    *,
    bos_token: str = "<s>",
    special_tokens: Sequence[str] = (),
    n_lines: int = 200,
    vocab_size: int = 400,
    seed: int = 0,
):  # noqa: ANN201 - a PreTrainedTokenizerFast
    """A small byte-level BPE tokenizer (no model) for tests of special-token handling.

    Args:
        bos_token: the token the tokenizer adds at the front (`add_special_tokens=True`); it is made a
            special token, as in the checkpoint it stands in for (`<|begin_of_text|>`, `<bos>`).
        special_tokens: more tokens that are never split (`<|eot_id|>`, `<|start_header_id|>`).
        n_lines: corpus lines to train on.
        vocab_size: the BPE vocabulary size.
        seed: the corpus seed (the same seed gives the same tokenizer).

    Returns:
        A `PreTrainedTokenizerFast` whose `bos_token` is added in front of every encoding.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = _build_tokenizer(_corpus(random.Random(seed), n_lines), vocab_size)
    extra = [t for t in (bos_token, *special_tokens) if t not in SPECIAL_TOKENS]
    backend = tok.backend_tokenizer
    backend.add_special_tokens(extra)
    bos = backend.token_to_id(bos_token)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B", special_tokens=[(bos_token, bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=4096,
        additional_special_tokens=extra,
    )


def build_tiny_llama(out_dir: Path, *, seed: int = 0, pretrain_steps: int = 300, vocab_size: int = 1024) -> Path:
    """Build, pre-train and save the tiny Llama (model + tokenizer) into `out_dir`; return it.

    Deterministic given `seed` (CPU, one thread, fixed corpus, fixed init). About 10-20 s with the
    default 300 steps; `pretrain_steps=0` saves the randomly initialised model (for fast tests).
    """
    torch = require("torch", "hf", "Building the tiny model")
    transformers = require("transformers", "hf", "Building the tiny model")
    transformers.utils.logging.disable_progress_bar()
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    corpus = _corpus(rng, 3000)
    tokenizer = _build_tokenizer(corpus, vocab_size)

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    if pretrain_steps > 0:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # ops this small gain nothing from threads; one thread is also reproducible
        try:
            _pretrain(torch, model, tokenizer, corpus, steps=pretrain_steps, seed=seed)
        finally:
            torch.set_num_threads(threads)
    model.eval()

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / MARKER).write_text(
        json.dumps({"version": TINY_VERSION, "seed": seed, "pretrain_steps": pretrain_steps}) + "\n"
    )
    return out_dir


def _pretrain(
    torch,
    model,
    tokenizer,
    corpus: list[str],
    *,
    steps: int,
    seed: int,
    block: int = 96,
    batch: int = 16,
    lr: float = 3e-3,
) -> None:
    """Next-token training on the packed corpus (each line: bos ... eos)."""
    ids: list[int] = []
    for line in corpus:
        ids.extend(tokenizer(line)["input_ids"] + [tokenizer.eos_token_id])
    n_blocks = len(ids) // block
    data = torch.tensor(ids[: n_blocks * block]).view(n_blocks, block)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * (1 - s / steps))
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, n_blocks, (batch,), generator=gen)
        x = data[rows]
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.last_pretrain_loss = float(loss.detach())


def default_tiny_model_dir() -> Path:
    """`$MEDSAFETYBENCH_CACHE/tiny-llama-v1`, else `~/.cache/medsafetybench/tiny-llama-v1`."""
    root = os.environ.get("MEDSAFETYBENCH_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "medsafetybench"
    return base / TINY_VERSION


def ensure_tiny_llama(path: Path | None = None, *, seed: int = 0) -> Path:
    """Return a built tiny model at `path` (default: the cache dir), building it once if needed.

    The build happens in a sibling temporary directory renamed into place when complete, so a crash
    never leaves a half-built model where this function would later trust it. A directory without the
    completion marker (e.g. a copy interrupted by hand) is set aside and rebuilt.
    """
    target = Path(path) if path is not None else default_tiny_model_dir()
    return build_once(target, lambda tmp: build_tiny_llama(tmp, seed=seed))


def build_once(target: Path, build: Callable[[Path], object], marker: str = MARKER) -> Path:
    """Return `target` if it holds a complete build (its `marker` file), else run `build(tmp)` into a
    sibling temporary directory and rename it into place (see `ensure_tiny_llama`)."""
    target = Path(target)
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        build(tmp)
        if not (tmp / marker).is_file():
            raise RuntimeError(f"the build of {target} wrote no {marker}")
        if target.exists() and not (target / marker).is_file():
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / marker).is_file():  # someone else won the race with a complete build
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class Lesson:
    """One prompt (text, rendered by `models.formats.encode_prompt` in `prompt_format`) and the answer a
    taught model must give to it under greedy decoding."""

    prompt: str
    prompt_format: str
    target: str


def teach_answers(
    base: Path,
    out: Path,
    lessons: Sequence[Lesson],
    *,
    add_tokens: Sequence[str] = (),
    max_steps: int = 1500,
    seed: int = 0,
    lr: float = 2e-3,
    check_every: int = 25,
) -> int:
    """Fully fine-tune the model in `base` until greedy decoding gives every lesson's target (then an
    eos), save model and tokenizer to `out` with `save_pretrained`, return the optimizer steps taken.

    One lesson per step, drawn by a seeded RNG; the check is teacher-forced (every target token is the
    argmax), which is what greedy decoding reproduces. `add_tokens` become single tokens first (e.g.
    verdict words whose log-probabilities a judge reads). Raises RuntimeError if `max_steps` is not
    enough. Deterministic for a seed on CPU with one thread.
    """
    torch = require("torch", "hf", "Teaching the tiny model")
    transformers = require("transformers", "hf", "Teaching the tiny model")
    from ..models.formats import encode_prompt

    tok = transformers.AutoTokenizer.from_pretrained(base)
    model = transformers.AutoModelForCausalLM.from_pretrained(base)
    if add_tokens:
        tok.add_tokens(list(add_tokens))
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    data = []
    for lesson in lessons:
        prompt = encode_prompt(tok, lesson.prompt, lesson.prompt_format)
        target = tok(lesson.target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        data.append((torch.tensor([prompt + target]), len(prompt), target))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def learned() -> bool:
        model.eval()
        with torch.inference_mode():
            return all(
                model(input_ids=ids).logits[0, n - 1 : -1].argmax(-1).tolist() == target for ids, n, target in data
            )

    for step in range(max_steps):
        model.train()
        ids, n, _ = data[rng.randrange(len(data))]
        labels = ids.clone()
        labels[:, :n] = -100
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % check_every == 0 and learned():
            break
    else:
        raise RuntimeError(f"the model did not learn its {len(data)} answers in {max_steps} steps")
    model.eval()
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return step + 1


def widen_heads(src: Path, dst: Path, head_dim: int = 64) -> Path:
    """Write to `dst` a copy of the Llama in `src` whose attention heads are zero-padded to `head_dim`.

    The copy computes the same function: each head's dimensions go to the rotary slots of the same
    frequency in the wider head (`rope_theta ** (-2k/d)` is the `(head_dim/d)k`-th frequency of the wider
    head), the other slots stay zero in q, k, v and o, and q is scaled by `sqrt(head_dim/d)` so that
    vLLM's `head_dim ** -0.5` softmax scale gives the same scores (with `head_dim = 4d`, as by default,
    the scale factor is 2 and exact in floating point). vLLM's CPU attention needs `head_dim >= 32`;
    the tiny model's heads are 16 wide, so the vLLM tests and benches serve this copy.
    """
    import torch
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    old = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    if head_dim <= old or head_dim % old:
        raise ValueError(f"head_dim {head_dim} must be a multiple of the model's {old}")
    f, half = head_dim // old, old // 2
    slots = torch.tensor([f * k for k in range(half)] + [f * k + head_dim // 2 for k in range(half)])
    out = {}
    for name, w in load_file(src / "model.safetensors").items():
        if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
            heads = w.shape[0] // old
            wide = torch.zeros(heads, head_dim, w.shape[1], dtype=w.dtype)
            wide[:, slots, :] = w.view(heads, old, -1)
            if name.endswith("q_proj.weight"):
                wide *= (head_dim / old) ** 0.5
            w = wide.reshape(heads * head_dim, -1)
        elif name.endswith("o_proj.weight"):
            heads = w.shape[1] // old
            wide = torch.zeros(w.shape[0], heads, head_dim, dtype=w.dtype)
            wide[:, :, slots] = w.view(w.shape[0], heads, old)
            w = wide.reshape(w.shape[0], heads * head_dim)
        out[name] = w.contiguous()
    dst.mkdir(parents=True, exist_ok=True)
    for file in src.iterdir():
        if file.is_file() and file.name not in ("model.safetensors", "config.json"):
            shutil.copyfile(file, dst / file.name)
    (dst / "config.json").write_text(json.dumps({**config, "head_dim": head_dim}, indent=2) + "\n", encoding="utf-8")
    save_file(out, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m medsafetybench.testing.tiny build [DIR]`: build (or find) the tiny Llama; `widen SRC DST
    [--head-dim 64]`: write the copy with wider heads that vLLM's CPU attention serves (`widen_heads`).
    Mistakes print one line and return 2."""
    import argparse
    import sys

    from ..errors import UserError

    ap = argparse.ArgumentParser(
        prog="python -m medsafetybench.testing.tiny",
        description="Build the tiny Llama, or a copy of it that vLLM can serve.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the tiny Llama (once; reused) and print its folder")
    b.add_argument("dir", nargs="?", type=Path, help=f"where (default: {default_tiny_model_dir()})")
    w = sub.add_parser(
        "widen",
        help="copy a Llama with its attention heads zero-padded to --head-dim (the same "
        "function; vLLM's CPU attention needs heads at least 32 wide)",
    )
    w.add_argument("src", type=Path, help="the model folder (config.json, model.safetensors)")
    w.add_argument("dst", type=Path, help="a new folder for the copy")
    w.add_argument("--head-dim", type=int, default=64, help="width of each head in the copy (default 64)")
    args = ap.parse_args(argv)
    try:
        if args.command == "build":
            path = ensure_tiny_llama(args.dir)
            print(f"tiny Llama in {path}: evaluate it as hf:{path}")
            return 0
        if not (args.src / "config.json").is_file() or not (args.src / "model.safetensors").is_file():
            raise UserError(
                f"{args.src}: no config.json and model.safetensors; give a Llama folder, e.g. the "
                "tiny model (python -m medsafetybench.testing.tiny build)"
            )
        if args.dst.exists() and any(args.dst.iterdir()):
            raise UserError(f"{args.dst} exists and is not empty: give a new folder for the copy")
        widen_heads(args.src, args.dst, args.head_dim)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} (heads {args.head_dim} wide, the same function): serve it as vllm:{args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
