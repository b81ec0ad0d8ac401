"""Model definitions, the model registry and the papers' reported numbers.

Importing this package registers every network of the zoo (the family modules call
:func:`igc.models.registry.register_model`, as timm's model modules do); the registry
itself imports none of them.
"""

from igc.models import families, small  # noqa: F401  (register the zoo)
from igc.models.registry import create_model, list_models, model_entry, temporary_model

__all__ = ["create_model", "list_models", "model_entry", "temporary_model"]
