"""Where a model runs: the `local` engine (the backend in this process) or `ray` (N replicas on a Ray
cluster, `ray_engine.RayChatModel`, under the same identity so both share cache keys).

`parse_engine` reads `--engine local|ray|ray:ADDRESS`; `load_on_engine` builds the model there.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import ChatModel
from .loading import load_model, model_identity
from .spec import ModelSpec, parse_spec

ENGINES = ("local", "ray")


def parse_engine(text: str | None) -> tuple[str, str | None]:
    """`local`, `ray` or `ray:ADDRESS` -> (engine, address or None).

    Raises:
        UserError: an unknown engine, or `local:` with an address.
    """
    name, _, address = (text or "local").strip().partition(":")
    name = name.strip().lower()
    if name not in ENGINES or (name == "local" and address):
        raise UserError(
            f"--engine '{text}' is not known: use local, ray, or ray:ADDRESS "
            "(e.g. ray:auto, ray:10.0.0.5:6379 or ray:ray://head:10001)"
        )
    return name, address.strip() or None


def load_on_engine(
    spec: str | ModelSpec,
    *,
    engine: str | None = None,
    replicas: int = 1,
    ray_address: str | None = None,
    num_gpus: float | None = None,
    **options: Any,
) -> ChatModel:
    """Build the model for `spec` on `engine`.

    Args:
        spec: a model spec string or a parsed `ModelSpec`.
        engine: `local` (default: `loading.load_model`), `ray` or `ray:ADDRESS` (the backend in
            `replicas` Ray actors; same identity, so the same cache).
        replicas: Ray replicas (engine ray only).
        ray_address: Ray cluster address; overrides the one in `engine`.
        num_gpus: GPUs per Ray replica (default: see `RayChatModel`).
        **options: settings for the backend, as for `load_model`.

    Returns:
        The model: the backend itself, or a `RayChatModel` over its replicas.

    Raises:
        UserError: an unknown engine, or replicas with the local engine.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    name, address = parse_engine(engine)
    if name == "local":
        if replicas != 1:
            raise UserError(f"--replicas {replicas} needs --engine ray (the local engine runs one copy of the model)")
        return load_model(spec, **options)
    from .ray_engine import RayChatModel

    # where this machine sees the weights it names the identity itself, and the replicas start on the first
    # request (a fully cached run starts none); elsewhere they start now and name it
    try:
        identity: str | None = model_identity(spec, **options)
    except UserError:
        identity = None
    return RayChatModel(
        spec,
        options,
        replicas=replicas,
        address=ray_address or address,
        num_gpus=num_gpus,
        identity=identity,
        start=identity is None,
    )
