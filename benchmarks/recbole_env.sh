#!/usr/bin/env bash
# Build (or reuse) the reference-library venv: RecBole 1.2.1 on torch 2.13.0, CPU.
#
#   bash benchmarks/recbole_env.sh          # prints the venv's python path on success
#   RECBOLE_VENV=/elsewhere bash benchmarks/recbole_env.sh
#
# Idempotent: the venv is (re)built only when it is missing or its stamp file does not match the
# hash of the pinned requirement list below (plus the interpreter version). torch is installed
# first, then RecBole under a constraint file that pins torch, so nothing can swap torch out.
# RecBole 1.2.1 predates NumPy 2 / SciPy 1.12 / torch 2.6; benchmarks/recbole_shim.py patches that
# and must be imported before recbole (benchmarks/recbole_runner.py does so).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${RECBOLE_VENV:-$HERE/.recbole-venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.mmkgrec-stamp"

TORCH_REQ="torch==2.13.0"
# Everything RecBole's quick_start / trainer / models import at module load comes in through
# recbole's own requirements (ray, thop, tabulate, colorlog, colorama, texttable, psutil, plotly,
# tensorboard, scikit-learn, ...). pandas<3 as in the anchor runs (RecBole 1.2.1 uses chained
# inplace fillna, a no-op under pandas 3 copy-on-write). setuptools<81: ray 2.6.3 (a recbole
# dependency) still imports pkg_resources, which setuptools 81 removes.
RECBOLE_REQS=("recbole==1.2.1" "pandas<3" "setuptools<81")

req_list() {
    printf '%s\n' "$TORCH_REQ" "${RECBOLE_REQS[@]}"
    "$PYTHON" -c 'import sys; print("python", sys.version.split()[0])'
}
WANT="$(req_list | sha256sum | cut -d' ' -f1)"

verify() {
    (cd "$HERE" && "$VENV/bin/python" -W ignore - <<'PY'
import recbole_shim  # noqa: F401  (must precede recbole)
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
import recbole
assert recbole.__version__ == "1.2.1", recbole.__version__
from recbole.config import Config  # noqa: F401
from recbole.data import create_dataset, data_preparation  # noqa: F401
from recbole.quick_start import run_recbole  # noqa: F401
from recbole.utils import get_model, get_trainer  # noqa: F401
from recbole.evaluator.metrics import NDCG  # noqa: F401
for name in ("BPR", "LightGCN", "CKE", "KGCN"):
    get_model(name)
print("recbole", recbole.__version__, "torch", torch.__version__)
PY
    )
}

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    if verify >/dev/null 2>&1; then
        echo "$VENV/bin/python"
        exit 0
    fi
    echo "recbole venv at $VENV fails verification; rebuilding" >&2
fi

echo "building RecBole venv at $VENV" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
CONS="$(mktemp)"
trap 'rm -f "$CONS"' EXIT
echo "$TORCH_REQ" > "$CONS"
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
# (drop pip's noise about configured local index folders that do not exist)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet "${PIP[@]}" "$TORCH_REQ" >&2
# -c adds to any constraint file that pip's own config already names (e.g. /etc/xdg/pip).
quiet "${PIP[@]}" -c "$CONS" "${RECBOLE_REQS[@]}" >&2
verify >&2
echo "$WANT" > "$STAMP"
echo "$VENV/bin/python"
