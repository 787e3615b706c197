"""What runs inside a Ray actor for the `ray` engine (`ray_engine.RayChatModel`): one model replica, and the
directory shipping that puts an adapter trained on another node where the replica can load it.

`Replica` loads the backend with `load_model` (hf: or vllm:, in the actor's process, on the GPUs Ray gave
it), answers chunks of requests and medical QA log-likelihood batches, and never opens the run store.
`pack_dir`/`stage_dir` move a small directory (a LoRA adapter) through Ray and write it in place on a node
atomically, refusing to overwrite a different directory at that path.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import ChatRequest, Completion
from .spec import parse_spec


def pack_dir(path: str | Path) -> dict[str, bytes]:
    """Every file under `path` (relative posix name -> bytes): a small directory sent through Ray."""
    root = Path(path)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def stage_dir(path: str | Path, files: dict[str, bytes]) -> bool:
    """Make `path` hold `files` (on the node this runs on), unless it already does. The copy is written
    beside it and renamed into place, so a half-written directory is never seen. Returns True when it
    wrote. A directory already there with other contents is refused, never overwritten."""
    root = Path(path)
    if root.is_dir():
        same = all(
            (root / name).is_file() and (root / name).stat().st_size == len(data) for name, data in files.items()
        )
        if same:
            return False
        raise UserError(
            f"{root} already exists on this node with other contents: move it away, or put the "
            "project on a file system shared by every node"
        )
    tmp = root.parent / f".{root.name}.staging-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name, data in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.is_dir():  # another process on this node staged it first: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


class Replica:
    """One replica inside a Ray actor: loads the backend, answers chunks, never opens the store. A
    failure while loading is kept and reported by `ready()` (so the driver can show a `UserError` as one)."""

    def __init__(self, spec: str, options: dict[str, Any], stage: dict[str, dict[str, bytes]] | None = None) -> None:
        from .loading import load_model

        self.spec = parse_spec(spec)
        self.model: Any = None
        self.error: tuple[bool, str] | None = None
        self.scorers: dict[tuple[int, bool], Any] = {}
        try:
            for path, files in (stage or {}).items():
                stage_dir(path, files)
            self.model = load_model(self.spec, **options)
        except Exception as exc:  # reported by ready(); the actor stays up to say why
            self.error = (
                isinstance(exc, UserError),
                str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}",
            )

    def ready(self) -> dict[str, Any]:
        import ray

        return {
            "identity": None if self.model is None else self.model.identity,
            "error": self.error,
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
        }

    def _loaded(self) -> Any:
        if self.model is None:  # a restarted actor whose reload failed
            raise RuntimeError(f"replica could not load {self.spec}: {self.error[1] if self.error else '?'}")
        return self.model

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return asyncio.run(self._loaded().generate(requests))

    def identity_for(self, prompt_format: str) -> str:
        """The identity the hf: backend gives these weights under another prompt format (e.g. raw for
        medical QA log-likelihoods)."""
        from .hf_backend import HFChatModel

        return HFChatModel(self.spec.name, self.spec.adapter, prompt_format=prompt_format).identity

    def loglik(self, pairs: list[tuple[str, tuple[str, ...]]], batch_size: int, add_bos: bool) -> list[list[float]]:
        """Per-choice log-likelihoods (medical QA), with the replica's loaded hf: model."""
        from ..medqa.loglik import LogLikScorer

        key = (batch_size, add_bos)
        if key not in self.scorers:
            model = self._loaded()
            self.scorers[key] = LogLikScorer(model.model, model.tokenizer, batch_size=batch_size, add_bos=add_bos)
        return self.scorers[key].score(pairs)
