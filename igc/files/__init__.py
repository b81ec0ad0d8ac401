"""Every file format igc writes, read and validated in one place.

=====================  =====================================  ==============================
file                   module                                 read / write
=====================  =====================================  ==============================
``checkpoint.pt``      :mod:`igc.files.checkpoint`            ``load_checkpoint`` /
                                                              ``save_checkpoint``
``metrics.jsonl``      :mod:`igc.files.records`               ``read_metrics`` /
                                                              ``append_jsonl``
``summary.json``       :mod:`igc.files.records`               ``read_summary`` /
                                                              ``write_json``
``run.json``           :mod:`igc.files.records`               ``read_run_info`` /
                                                              ``write_json``
recipes (``.toml``)    :mod:`igc.files.tomlfile`              ``read_toml`` / ``write_toml``
``.igc-run`` marker    :mod:`igc.files.run_dir`               ``RunFolder``, ``is_marked``
weights (any kind)     :mod:`igc.files.weights`               ``read_weights`` /
                                                              ``load_weights``
``.safetensors``       :mod:`igc.files.safetensors`           ``read_safetensors`` /
                                                              ``write_safetensors``
state dicts            :mod:`igc.files.statedict`             ``check_tensors``, ``compare``
=====================  =====================================  ==============================

Writes are atomic (:mod:`igc.files.atomic`); reads check sizes, types and ranges field by
field (:mod:`igc.files.schema`) and raise :class:`~igc.errors.IGCError` with one line.
"""

from igc.files.atomic import atomic_write, atomic_writer, stale_temp_files
from igc.files.schema import Spec, check, check_fields, check_plain

__all__ = ["Spec", "atomic_write", "atomic_writer", "check", "check_fields", "check_plain",
           "stale_temp_files"]
