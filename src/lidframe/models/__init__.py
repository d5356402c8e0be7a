"""Language-identification models: the interface, the registry and the built-in families.

To add a family without touching lidframe: subclass :class:`LidModel` (``labels`` plus either
``prepare``/``forward`` or ``predict_batch``) and register a factory, either with
:func:`register_family` or as an entry point of an installed package in the group
``lidframe.models`` (name = family, value = ``module:factory``). ``lidframe models`` lists them.
"""

from lidframe.columns import column_alias
from lidframe.models.availability import check_available
from lidframe.models.base import Batch, LidModel, resolve_device
from lidframe.models.registry import (
    ENTRY_POINT_GROUP,
    Factory,
    Family,
    available_models,
    cached_labels,
    families,
    load_count,
    load_model,
    models_text,
    parse_model,
    register_family,
    register_name,
)
from lidframe.models.spec import ModelSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "Batch",
    "Factory",
    "Family",
    "LidModel",
    "ModelSpec",
    "available_models",
    "cached_labels",
    "check_available",
    "column_alias",
    "families",
    "load_count",
    "load_model",
    "models_text",
    "parse_model",
    "register_family",
    "register_name",
    "resolve_device",
]
