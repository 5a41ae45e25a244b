#!/usr/bin/env bash
# Create .venv (Python 3.11) with torch 2.14.1 + torchvision 0.29.1 and pyg-wsss[all] (its
# extra 'dev' brings pytest, ruff, mypy and build: everything `make test` runs).
# Idempotent: a stamp file records what was installed; re-running only reinstalls when
# pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.pyg_wsss_stamp"
want="$(sha256sum pyproject.toml | cut -c1-16)-torch2.14.1"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "[setup] installing torch 2.14.1 + torchvision 0.29.1 (a few minutes)"
"$VENV/bin/python" -m pip install --quiet torch==2.14.1 torchvision==0.29.1
echo "[setup] installing pyg-wsss[all] (builds pydensecrf2, about a minute)"
"$VENV/bin/python" -m pip install --quiet -e ".[all]"
echo "$want" > "$stamp"
echo "[setup] done"
