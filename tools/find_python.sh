#!/usr/bin/env bash
# Sourced by the launchers (torchrun.sh, slurm_train.sh): sets PYTHON, the interpreter they run.
# PYTHON from the environment wins; else the project's .venv/bin/python when it exists (the one
# `make` uses, so the launchers work without activating the venv); else `python` from PATH.
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
    [[ -x "$PYTHON" ]] || PYTHON=python
fi
