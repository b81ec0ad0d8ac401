#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment in .venv with the pinned build
# of torch, igc itself (editable) with its test/plot/export extras, pytorchcv for the
# weight-conversion tests, and the Debian Fashion-MNIST package where apt exists.
# Safe to run again.
#
# Which torch build: IGC_TORCH=cpu (default; the CPU build, about 200 MB, from PyTorch's
# CPU index or any local copy of that wheel), IGC_TORCH=cuda (PyPI's default build: CUDA
# on Linux, several GB). IGC_TORCH_INDEX=URL replaces PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
PIP=(.venv/bin/python -m pip install --disable-pip-version-check)
[ -x .venv/bin/python ] || "$PY" -m venv .venv
case "${IGC_TORCH:-cpu}" in
  cpu)
    if [ "$(uname -s)" = Linux ] || [[ "$(uname -s)" == MINGW* ]]; then
      "${PIP[@]}" "torch==${TORCH_VERSION}+cpu" \
        --extra-index-url "${IGC_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
    else  # macOS: PyPI's wheels are CPU builds
      "${PIP[@]}" "torch==${TORCH_VERSION}"
    fi ;;
  cuda) "${PIP[@]}" "torch==${TORCH_VERSION}" ;;
  *) echo "setup: IGC_TORCH must be cpu or cuda, not '${IGC_TORCH}'" >&2; exit 2 ;;
esac
"${PIP[@]}" -q -e ".[test]"
# pytorchcv's model modules import without torchvision (which does not load beside the CPU
# torch build here): install it without its dependencies, for the conversion tests only.
"${PIP[@]}" -q --no-deps "pytorchcv==0.0.74"
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "setup: could not install dataset-fashion-mnist; igc will download Fashion-MNIST" >&2
fi
