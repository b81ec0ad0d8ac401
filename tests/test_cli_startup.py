"""The command line starts without the library (issue 11): ``igc --help``, every
subcommand's ``--help`` and the NumPy-only ``igc design`` run with torch made
unimportable, and the help is written for users."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from igc.cli.parser import COMMANDS, build_parser

#: Runs ``python -m igc ARGS`` after putting a finder first on ``sys.meta_path`` that
#: refuses the blocked packages, as if they were not installed.
BLOCKED_RUN = """
import runpy, sys
BLOCKED = {blocked!r}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked for this test")
        return None

sys.meta_path.insert(0, Blocker())
sys.argv = ["igc", *{args!r}]
runpy.run_module("igc", run_name="__main__", alter_sys=True)
"""

SUBCOMMANDS = [name for name in build_parser()._subparsers._group_actions[0].choices]


def run_blocked(args: list[str], blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    code = BLOCKED_RUN.format(blocked=set(blocked), args=args)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_help_runs_without_torch_or_numpy():
    proc = run_blocked(["--help"], ("torch", "numpy"))
    assert proc.returncode == 0, proc.stderr
    assert "commands:" in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_runs_without_torch(command):
    proc = run_blocked([command, "--help"], ("torch",))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: igc {command}")


def test_design_runs_without_torch():
    proc = run_blocked(["design", "--channels", "64", "--layers", "3", "--json"], ("torch",))
    assert proc.returncode == 0, proc.stderr
    assert '"branch_sizes": [\n    1,\n    8,\n    8\n  ]' in proc.stdout


def test_a_blocked_torch_is_noticed_by_what_needs_it():
    """The check can fail: a command that needs torch does not run without it."""
    proc = run_blocked(["info", "igcv2_100"], ("torch",))
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


def test_building_the_parser_imports_no_library():
    code = ("import sys; from igc.cli.parser import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'igc.models', 'igc.deploy', "
            "'igc.sparsity', 'igc.data') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


#: Runs ``python -m igc ARGS`` and prints, as JSON, the top-level packages outside the
#: standard library and the igc subpackages it imported.
IMPORTS_RUN = """
import json, runpy, sys
sys.argv = ["igc", *{args!r}]
try:
    runpy.run_module("igc", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
tops = {{m.split(".")[0] for m in sys.modules}} - set(sys.stdlib_module_names)
print(json.dumps([sorted(t for t in tops if not t.startswith("_")),
                  sorted({{".".join(m.split(".")[:2]) for m in sys.modules
                          if m.startswith("igc.")}})]))
"""

#: What ``--help`` may import besides the standard library (issue 21: it answers at once).
HELP_PACKAGES = {"igc", "tomli_w"}
#: igc's packages of the library proper, none of which ``--help`` needs.
LIBRARY = {"igc.analysis", "igc.data", "igc.deploy", "igc.integrations", "igc.layers",
           "igc.models", "igc.sparsity", "igc.viz", "igc.weights"}


def imported_by(args: list[str]) -> tuple[set[str], set[str]]:
    """The non-standard top-level packages and the igc subpackages ``igc ARGS`` imports."""
    proc = subprocess.run([sys.executable, "-c", IMPORTS_RUN.format(args=args)],
                          capture_output=True, text=True, timeout=60)
    tops, subpackages = json.loads(proc.stdout.splitlines()[-1])
    return set(tops), set(subpackages)


@pytest.mark.parametrize("args", [["--help"], *([c, "--help"] for c in SUBCOMMANDS)],
                         ids=lambda args: " ".join(args))
def test_help_imports_only_the_command_line(args):
    """``igc --help`` and every subcommand's answer at once: they import the standard
    library, igc's command line and its name lists, nothing of the library proper."""
    tops, subpackages = imported_by(args)
    assert tops <= HELP_PACKAGES, tops - HELP_PACKAGES
    assert not subpackages & LIBRARY, subpackages & LIBRARY


def test_the_import_check_can_fail():
    """The same check sees the library a command that needs it imports."""
    tops, subpackages = imported_by(["models", "igcv2_100", "--pretrained"])
    assert "torch" in tops and "igc.models" in subpackages


def test_help_is_written_for_users(capsys):
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    assert set(choices) == {"eval" if c == "evaluate" else c for c in COMMANDS}
    top = parser.format_help()
    for name, command in choices.items():
        description = command.description
        summary = description.splitlines()[0]
        assert f"  {name}" in top and summary.rstrip(".") in top
        assert len(summary) <= 70 and summary.endswith(".")  # one line, a sentence
        prose = [part for part in description.split("\n\n")
                 if not part.startswith("Examples:")]
        assert all(part.rstrip().endswith(".") for part in prose), name  # no cut sentence
        text = command.format_help()
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, name
    assert "``" not in top and "developer" not in top.lower()


@pytest.mark.parametrize("argv, listed", [
    (["bench", "igcv2_fmnist", "--forms", "fast"],
     "choose from compiled, fused, naive, onnxruntime"),
    (["export", "igcv2_fmnist", "--format", "tflite"], "choose from onnx, pt2, safetensors"),
    (["reproduce", "table2", "--budget", "huge"], "choose from full, medium, short, smoke"),
    (["train", "--device", "tpu"], "use auto, cpu, cuda or cuda:N"),
])
def test_unknown_names_list_the_valid_ones(argv, listed, capsys):
    from igc.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert listed in err and err.count("\n") == 1
