"""The fake OpenAI server's command line: `python -m medsafetybench.testing [options]`.

Starts a `FakeOpenAIServer` on the given host and port, prints one line with its base URL (so a
script can read it from stdout), serves until Ctrl-C or SIGTERM, then prints what it served. Every
option of the library class is here: the reply mode (canned, echo, rubric, classifier), a fixed latency, the
rate of each injected fault, a fault on every first attempt, the seed that makes faults
reproducible, and an API key to require. It also serves the OpenAI Files/Batch API and the Anthropic
Messages API and Message Batches (at the server root: `anthropic:MODEL@http://HOST:PORT`), so
`medsafety eval --batch` can be tried offline (`--batch-polls`, `--batch-fail-every`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .fake_openai import FAULT_KINDS, FakeOpenAIServer, FaultPlan
from .responders import MODES


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for --help in docs and tests)."""
    p = argparse.ArgumentParser(
        prog="python -m medsafetybench.testing",
        description="A fake OpenAI-compatible chat server with fault injection, for testing pipelines offline. "
        "Serves POST /v1/chat/completions, POST /v1/completions and GET /v1/models until Ctrl-C.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="echo",
        help="replies: echo ('echo: <last user message>'), canned (refusal for about half the prompts, "
        "else general information), rubric (a judge in the paper's '#thescore: N' format: "
        "1 for refusals, 5 otherwise) or classifier (a verdict in the format of the classifier "
        "prompt received: Llama Guard, WildGuard, HarmBench, ShieldGemma; harmful unless the "
        "response refuses); default echo",
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds to wait before every reply (default 0)")
    p.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        help="total fault rate split evenly over all kinds (429, 500, 503, slow, malformed, drop)",
    )
    for kind in FAULT_KINDS:
        p.add_argument(
            f"--rate-{kind}",
            type=float,
            default=0.0,
            metavar="R",
            help=f"rate of '{kind}' faults, 0..1 (all rates together at most 1)",
        )
    p.add_argument(
        "--first-attempt-fault",
        choices=FAULT_KINDS,
        default=None,
        help="fail the first attempt of every distinct prompt this way",
    )
    p.add_argument(
        "--retry-after",
        type=float,
        nargs=2,
        default=(0.05, 1.0),
        metavar=("MIN", "MAX"),
        help="Retry-After seconds sent with 429/503, drawn from [MIN, MAX] (default 0.05 1.0)",
    )
    p.add_argument(
        "--slow-seconds",
        type=float,
        default=2.0,
        help="how long a 'slow' fault stalls before answering 504 (default 2)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default 0)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: accept any)")
    p.add_argument(
        "--batch-polls",
        type=int,
        default=1,
        metavar="N",
        help="polls a batch (OpenAI Batch API or Anthropic Message Batches) stays in progress (default 1)",
    )
    p.add_argument(
        "--batch-fail-every",
        type=int,
        default=0,
        metavar="N",
        help="in the first batch, every N-th request fails (default 0: none)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=None,
        dest="models",
        help="model id listed by /v1/models (repeatable; default fake-model)",
    )
    p.add_argument(
        "--root", default=None, help="'root' of every /v1/models entry (vLLM: the weights path; default: none)"
    )
    p.add_argument("--created", type=int, default=0, help="'created' of every /v1/models entry (default 0)")
    p.add_argument("--owned-by", default="fake", help="'owned_by' of every /v1/models entry (default fake)")
    p.add_argument(
        "--system-fingerprint", default=None, help="'system_fingerprint' of every completion (default: none)"
    )
    p.add_argument(
        "--max-model-len",
        type=int,
        default=None,
        help="'max_model_len' (context window in tokens) of every /v1/models entry, as vLLM reports it",
    )
    return p


def plan_from_args(args: argparse.Namespace) -> FaultPlan | None:
    """The fault plan the options describe, or None for a server without faults."""
    extra = {
        "retry_after": tuple(args.retry_after),
        "slow_seconds": args.slow_seconds,
        "first_attempt_fault": args.first_attempt_fault,
        "seed": args.seed,
    }
    if args.fault_rate is not None:
        plan = FaultPlan.mixed(args.fault_rate, **extra)
    else:
        rates = {f"rate_{k}": getattr(args, f"rate_{k}") for k in FAULT_KINDS}
        plan = FaultPlan(**rates, **extra)
    if not any(plan._rates()) and plan.first_attempt_fault is None:
        return None
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.latency < 0:
        parser.error("--latency must be 0 or more")
    srv = FakeOpenAIServer(
        MODES[args.mode],
        latency=args.latency,
        faults=plan,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        models=tuple(args.models or ("fake-model",)),
        root=args.root,
        created=args.created,
        owned_by=args.owned_by,
        system_fingerprint=args.system_fingerprint,
        max_model_len=args.max_model_len,
    )
    from .fake_anthropic import FakeAnthropic
    from .fake_batches import BatchFaults, FakeBatches

    batches = FakeBatches(srv, BatchFaults(polls=max(0, args.batch_polls), fail_every=max(0, args.batch_fail_every)))
    FakeAnthropic(srv, batches.engine)
    try:
        srv.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    # SIGTERM and Ctrl-C both stop it, Ctrl-C even when started in the background of a script (where
    # SIGINT arrives ignored)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    faults = "no faults" if plan is None else f"faults seed {plan.seed}"
    print(f"fake OpenAI server at {srv.base_url} (mode {args.mode}, {faults}); Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        srv.stop()
    st = srv.stats()
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(st.by_outcome.items())) or "none"
    bs = batches.stats()
    print(
        f"served {st.total_calls} call(s): {outcomes}; {bs.batches_created} batch(es) of "
        f"{sum(bs.submitted.values())} request(s)",
        flush=True,
    )
    return 0
