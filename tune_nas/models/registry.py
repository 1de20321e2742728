"""The model registry: ``create_model(name, *data_shape, **arch)``.

A model factory is registered under a name with :func:`register_model`. Its first arguments
are the data's shape, and say which task it serves (:func:`model_task`):

* an image classifier: ``(num_classes, in_channels, image_size, **arch)``;
* a regressor (an emulator): ``(num_inputs, output_shape, **arch)``, ``output_shape`` the
  outputs' shape (``(outputs,)``, or ``(channels, points)`` for a field).

Its keyword arguments after those are the model's architecture choices; they are what a
search space may set (``width``, ``depth``, ...), and unknown ones are refused with a message
that lists the accepted names. :func:`create_model_for` builds a model for a data set's
splits (their ``shape_args``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable

from torch import nn

ModelFactory = Callable[..., nn.Module]
#: The data-shape arguments of each task's factories.
TASK_SHAPE_ARGS = {"classification": ("num_classes", "in_channels", "image_size"),
                   "regression": ("num_inputs", "output_shape")}
_SHAPE_ARGS = TASK_SHAPE_ARGS["classification"]
_REGISTRY: dict[str, ModelFactory] = {}


def _task_of_factory(fn: ModelFactory) -> str | None:
    params = list(inspect.signature(fn).parameters)
    for task, names in TASK_SHAPE_ARGS.items():
        if params[: len(names)] == list(names):
            return task
    return None


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register ``fn(num_classes, in_channels, image_size, **arch)`` as ``name``."""

    def wrap(fn: ModelFactory) -> ModelFactory:
        if _task_of_factory(fn) is None:
            params = list(inspect.signature(fn).parameters)
            raise TypeError(f"model {name!r}: factory must start with one of "
                            f"{list(TASK_SHAPE_ARGS.values())}, got {params}")
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


def list_models(task: str | None = None) -> list[str]:
    """The registered models (of ``task`` only, when given)."""
    return sorted(n for n, fn in _REGISTRY.items() if task is None or _task_of_factory(fn) == task)


def model_task(name: str) -> str:
    """``"classification"`` or ``"regression"``: what model ``name`` is built for."""
    return _task_of_factory(_factory(name))


def architecture_args(name: str) -> dict[str, object]:
    """The architecture arguments of model ``name`` and their defaults."""
    fn = _factory(name)
    shape = TASK_SHAPE_ARGS[_task_of_factory(fn)]
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if k not in shape}


def _factory(name: str) -> ModelFactory:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"--model {name!r}: unknown model; rule: one of "
                         f"{', '.join(list_models())}") from None


def create_model(name: str, *shape: object, **arch: object) -> nn.Module:
    """Build model ``name`` for the given data shape (its task's shape arguments, by position
    or by name) with architecture choices ``arch``."""
    fn = _factory(name)
    names = TASK_SHAPE_ARGS[_task_of_factory(fn)]
    if len(shape) > len(names):
        raise TypeError(f"model {name!r}: {len(shape)} data-shape arguments; rule: {', '.join(names)}")
    given = dict(zip(names, shape))
    for key in names[len(shape):]:
        if key not in arch:
            raise TypeError(f"model {name!r}: no {key!r}; rule: the data-shape arguments {', '.join(names)}")
        given[key] = arch.pop(key)
    accepted = architecture_args(name)
    unknown = sorted(set(arch) - set(accepted))
    if unknown:
        raise ValueError(f"model {name!r}: unknown architecture argument(s) {unknown}; rule: "
                         f"one of {sorted(accepted)}")
    return fn(*given.values(), **arch)


def create_model_for(name: str, splits, **arch: object) -> nn.Module:
    """Build model ``name`` for a data set's splits (their ``shape_args``); a model of another
    task than the data's is refused naming both."""
    task = getattr(splits, "task", "classification")
    if model_task(name) != task:
        raise ValueError(f"model {name!r} is a {model_task(name)} model, {splits.name} is {task} data; "
                         f"rule: one of {', '.join(list_models(task))}")
    return create_model(name, **splits.shape_args, **arch)
