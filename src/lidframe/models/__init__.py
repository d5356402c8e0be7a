"""Language-identification models: the interface, the registry and the model families."""

from lidframe.models.base import (
    LidModel,
    ModelSpec,
    available_models,
    column_alias,
    load_count,
    load_model,
    parse_model,
    register_family,
    register_name,
)

__all__ = [
    "LidModel",
    "ModelSpec",
    "available_models",
    "column_alias",
    "load_count",
    "load_model",
    "parse_model",
    "register_family",
    "register_name",
]
