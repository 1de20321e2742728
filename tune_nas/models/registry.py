"""The model registry: ``create_model(name, num_classes, in_channels, image_size, **arch)``.

A model factory is registered under a name with :func:`register_model`. Its keyword
arguments after the four data-shape arguments are the model's architecture choices; they
are what a search space may set (``width``, ``depth``, ...), and unknown ones are refused
with a message that lists the accepted names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable

from torch import nn

ModelFactory = Callable[..., nn.Module]
_SHAPE_ARGS = ("num_classes", "in_channels", "image_size")
_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register ``fn(num_classes, in_channels, image_size, **arch)`` as ``name``."""

    def wrap(fn: ModelFactory) -> ModelFactory:
        params = list(inspect.signature(fn).parameters)
        if params[:3] != list(_SHAPE_ARGS):
            raise TypeError(f"model {name!r}: factory must start with {_SHAPE_ARGS}, got {params}")
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def with_flat_parameters(fn: ModelFactory, names: Iterable[str]) -> ModelFactory:
    """``fn`` (which takes ``**kwargs``) with ``names`` spelled out in its signature as keyword
    arguments defaulting to None, which it does not receive when None: the registry lists a
    model's architecture arguments from its signature, and a space file may set exactly those
    (the flat encoding of a genotype, one parameter per choice)."""
    names = tuple(names)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **{k: v for k, v in kwargs.items() if v is not None or k not in names})

    signature = inspect.signature(fn)
    named = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    flat = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    wrapper.__signature__ = signature.replace(parameters=[*named, *flat])
    return wrapper


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def architecture_args(name: str) -> dict[str, object]:
    """The architecture arguments of model ``name`` and their defaults."""
    fn = _factory(name)
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if k not in _SHAPE_ARGS}


def _factory(name: str) -> ModelFactory:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"--model {name!r}: unknown model; rule: one of "
                         f"{', '.join(list_models())}") from None


def create_model(name: str, num_classes: int, in_channels: int, image_size: int,
                 **arch: object) -> nn.Module:
    """Build model ``name`` for the given data shape with architecture choices ``arch``."""
    accepted = architecture_args(name)
    unknown = sorted(set(arch) - set(accepted))
    if unknown:
        raise ValueError(f"model {name!r}: unknown architecture argument(s) {unknown}; rule: "
                         f"one of {sorted(accepted)}")
    return _factory(name)(num_classes, in_channels, image_size, **arch)
