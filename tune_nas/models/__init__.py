"""Models: a registry and the architectures registered in it."""

from tune_nas.models import global_net, morph_net, nb101, nb201, resnet, small_cnn, superkernel  # noqa: F401  (registers the models)
from tune_nas.models.registry import architecture_args, create_model, list_models, register_model

__all__ = ["architecture_args", "create_model", "list_models", "register_model"]
