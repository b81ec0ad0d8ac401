"""The count table shipped with igc (``igc/models/counts.json``, issue 21): equal to the
built networks, read by ``igc models`` without torch, and a network it does not hold is
counted from its module (and cached in the user's folder)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from igc.analysis import zoo
from igc.analysis.zoo import ENTRY_FIELDS, config_key, model_rows, read_table, table_entry
from igc.errors import IGCError
from igc.models.registry import list_models, model_entry, temporary_model

pytestmark = pytest.mark.usefixtures("one_thread")

TABLE = read_table()
#: One network per family counted in the fast lane; every network in the slow one.
FAMILIES: dict[str, list[str]] = {}
for _name in list_models():
    FAMILIES.setdefault(model_entry(_name).family, []).append(_name)
FAST = {names[0] for names in FAMILIES.values()}

STALE = "run `python scripts/count_models.py` to write igc/models/counts.json again"


def test_the_table_lists_every_network_with_its_configuration():
    """Cheap: the names, aliases, registry facts and configurations equal the registry's,
    so that a network added or changed without counting it again is caught at once."""
    assert sorted(TABLE) == list_models(), STALE
    for name, item in TABLE.items():
        entry = model_entry(name)
        assert item["aliases"] == list(entry.aliases), (name, STALE)
        assert item["key"] == config_key(name, entry.kwargs, entry.num_classes,
                                         entry.in_chans, entry.input_size), (name, STALE)
        facts = {k: getattr(entry, k) for k in ENTRY_FIELDS}
        assert {k: item["row"][k] for k in ENTRY_FIELDS} == facts, (name, STALE)


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
                                  for n in list_models()])
def test_the_table_equals_the_built_network(name):
    counted = json.loads(json.dumps(table_entry(name)))  # tuples as JSON writes them
    assert {k: v for k, v in TABLE[name].items() if k != "key"} == counted, STALE


def test_rows_from_the_table_equal_rows_counted_again():
    """The two paths of model_rows agree (the registry is imported in this process, so the
    table path is taken explicitly)."""
    pattern = "igcv2_c64_d8*"
    from_table = zoo._table_rows(pattern, TABLE)
    assert [r["name"] for r in from_table] == list_models(pattern)
    assert from_table == model_rows(pattern) == model_rows(pattern, use_cache=False)
    assert zoo._table_rows("igcv2_1.0", TABLE)[0]["name"] == "igcv2_100"  # an alias
    with pytest.raises(IGCError, match="unknown model 'nosuch'"):
        zoo._table_rows("nosuch", TABLE)


def run_without_torch(args: list[str]) -> subprocess.CompletedProcess:
    code = ("import runpy, sys\n"
            "class Blocker:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError(name + ' is blocked for this test')\n"
            "sys.meta_path.insert(0, Blocker())\n"
            f"sys.argv = ['igc', *{args!r}]\n"
            "runpy.run_module('igc', run_name='__main__', alter_sys=True)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_igc_models_reads_the_table_without_torch():
    proc = run_without_torch(["models", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [TABLE[n]["row"] for n in list_models()]
    proc = run_without_torch(["models", "nosuch"])
    assert proc.returncode == 2 and "unknown model 'nosuch'" in proc.stderr


def test_a_network_not_in_the_table_is_counted_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    base = model_entry("igcv2_fmnist")
    with temporary_model("test_uncounted", base.builder, family=base.family,
                         table=base.table, dataset=base.dataset, input_size=base.input_size,
                         num_classes=base.num_classes, in_chans=base.in_chans,
                         **base.kwargs):
        [row] = model_rows("test_uncounted")
        assert list(tmp_path.glob("igc/models-*.json"))  # counted, then cached
    counts = ("params", "macs", "params_counted", "macs_counted")
    assert {k: row[k] for k in counts} == {k: TABLE["igcv2_fmnist"]["row"][k] for k in counts}
    assert row["name"] == "test_uncounted" and row["paper_params"] is None


@pytest.mark.parametrize("damage", ["missing", "not json", "stale entry", "bad entry"])
def test_a_missing_damaged_or_stale_table_is_counted_again(damage, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "counts.json"
    good = json.loads(zoo.TABLE_PATH.read_text("utf-8"))
    name = "igcv2_c64_d8"
    if damage == "not json":
        path.write_text("{ not json")
    elif damage == "stale entry":  # as if the network changed after the table was written
        good["models"][name]["kwargs"]["width"] = 65
        good["models"][name]["row"]["params"] = 1
        path.write_text(json.dumps(good))
    elif damage == "bad entry":
        good["models"][name]["row"]["params"] = "many"
        path.write_text(json.dumps(good))
    monkeypatch.setattr(zoo, "TABLE_PATH", path)
    entry = read_table().get(name)
    assert entry is None or entry["key"] != TABLE[name]["key"]
    [row] = model_rows(name)
    assert row == TABLE[name]["row"]  # counted from the module, not the damaged entry
    assert list((tmp_path / "cache").glob("igc/models-*.json"))
