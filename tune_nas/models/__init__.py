"""Models: a registry and the architectures registered in it."""

from . import resnet, small_cnn, superkernel  # noqa: F401  (registers the models)
from .registry import architecture_args, create_model, list_models, register_model

__all__ = ["architecture_args", "create_model", "list_models", "register_model"]
