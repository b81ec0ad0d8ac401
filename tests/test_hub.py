"""Hugging Face Hub repositories in timm's layout: written by igc.hub.save_for_hub, read
from a local folder and, through the real huggingface_hub, from its offline cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from igc.errors import IGCError
from igc.hub import CONFIG, WEIGHTS, save_for_hub
from igc.models.registry import create_model

pytest.importorskip("huggingface_hub")

ROOT = Path(__file__).resolve().parents[1]
NAME = "igcv2_c64_d8"
ARGS = {"width": 16}


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = create_model(NAME, num_classes=7, in_chans=1, **ARGS)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture
def folder(tmp_path, trained):
    return save_for_hub(trained, tmp_path / "repo", model_args=ARGS)


def test_saved_folder_has_timms_layout_and_loads(folder, trained):
    config = json.loads((folder / CONFIG).read_text())
    assert config["architecture"] == NAME and config["num_classes"] == 7
    assert config["model_args"] == ARGS and config["pretrained_cfg"]["input_size"] == [1, 32, 32]
    from safetensors.torch import load_file

    assert set(load_file(folder / WEIGHTS)) == set(trained.state_dict())
    model = create_model(NAME, pretrained=folder)  # width, classes, channels from the folder
    assert torch.equal(outputs(model), outputs(trained))
    assert model.pretrained_cfg["weights"]["source"] == "hub"


def test_saving_never_overwrites(folder, trained):
    with pytest.raises(IGCError, match="already holds"):
        save_for_hub(trained, folder)


@pytest.mark.parametrize("change, match", [
    ("no-config", "has no config.json"),
    ("other-architecture", "holds weights of"),
    ("unknown-architecture", "unknown model"),
    ("not-json", "config.json is not JSON"),
    ("no-architecture", "lacks architecture"),
    ("no-weights", "model.safetensors does not exist"),
])
def test_bad_hub_folders_are_one_line(folder, change, match):
    config = json.loads((folder / CONFIG).read_text())
    if change == "no-config":
        (folder / CONFIG).unlink()
    elif change == "other-architecture":
        config["architecture"] = "igcv2_fmnist"
    elif change == "unknown-architecture":
        config["architecture"] = "resnet50"
    elif change == "no-architecture":
        del config["architecture"]
    elif change == "no-weights":
        (folder / WEIGHTS).unlink()
    if change in ("other-architecture", "unknown-architecture", "no-architecture"):
        (folder / CONFIG).write_text(json.dumps(config))
    if change == "not-json":
        (folder / CONFIG).write_text("{")
    with pytest.raises(IGCError, match=match) as err:
        create_model(NAME, pretrained=folder)
    assert "\n" not in str(err.value)


def _populate_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """The layout huggingface_hub reads offline: refs/main -> a snapshot folder."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = cache / f"models--{repo_id.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in os.listdir(folder):
        (snapshot / name).write_bytes((folder / name).read_bytes())


SCRIPT = """
import json, sys, torch
from igc.errors import IGCError
from igc.models.registry import create_model
out = {}
model = create_model("hf-hub:igc-test/tiny", pretrained=True)
x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    out["logits"] = model.eval()(x).tolist()
out["cfg"] = [model.pretrained_cfg["num_classes"], model.pretrained_cfg["weights"]["source"]]
untrained = create_model("hf-hub:igc-test/tiny")
out["untrained_classes"] = untrained.pretrained_cfg["num_classes"]
same = create_model("igcv2_c64_d8", pretrained="hf-hub:igc-test/tiny")
with torch.no_grad():
    out["same"] = torch.equal(same.eval()(x), model(x))
for name in ("hf-hub:igc-test/absent", "hf-hub:not a repo"):
    try:
        create_model(name, pretrained=True)
    except IGCError as exc:
        out.setdefault("errors", []).append(str(exc))
print(json.dumps(out))
"""


def test_hf_hub_names_load_through_huggingface_hubs_offline_cache(folder, trained,
                                                                   tmp_path):
    """The real library, offline, reading a cache laid out as it writes one."""
    cache = tmp_path / "hub-cache"
    _populate_cache(cache, "igc-test/tiny", folder)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert torch.equal(torch.tensor(out["logits"]), outputs(trained))
    assert out["cfg"] == [7, "hub"] and out["untrained_classes"] == 7 and out["same"]
    absent, malformed = out["errors"]
    assert "igc-test/absent: cannot get config.json" in absent and "\n" not in absent
    assert "not a Hub repository id" in malformed
