"""Models: a registry and the architectures registered in it."""

from tune_nas.models import emulators, global_net, morph_net, nb101, nb201, resnet, small_cnn, superkernel  # noqa: F401  (registers the models)
from tune_nas.models.registry import (
    architecture_args,
    create_model,
    create_model_for,
    list_models,
    model_task,
    register_model,
)

__all__ = ["architecture_args", "create_model", "create_model_for", "list_models", "model_task", "register_model"]
