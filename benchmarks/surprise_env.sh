#!/usr/bin/env bash
# Build (or reuse) the venv of the rating reference library: scikit-surprise 1.1.5 (with NumPy 2).
#
#   bash benchmarks/surprise_env.sh          # prints the venv's python path on success
#   SURPRISE_VENV=/elsewhere bash benchmarks/surprise_env.sh
#
# Its own venv, as RecBole's (benchmarks/recbole_env.sh): scikit-surprise builds a Cython
# extension at install time, and the benchmark reads only the split files our library exports, so
# neither library imports the other. Idempotent: rebuilt only when the stamp (hash of the pinned
# requirements and the interpreter version) is missing or stale, or the check fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${SURPRISE_VENV:-$HERE/.surprise-venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.mmkgrec-stamp"
REQS=("numpy>=2,<3" "scikit-surprise==1.1.5")

WANT="$( (printf '%s\n' "${REQS[@]}"; "$PYTHON" -c 'import sys; print("python", sys.version.split()[0])') \
        | sha256sum | cut -d' ' -f1)"

verify() {
    "$VENV/bin/python" -W ignore - <<'PY'
import numpy
import surprise
assert surprise.__version__ == "1.1.5", surprise.__version__
assert numpy.__version__.startswith("2."), numpy.__version__
from surprise import SVD, SVDpp, Dataset, Reader  # noqa: F401
from surprise.model_selection import GridSearchCV, PredefinedKFold  # noqa: F401
print("surprise", surprise.__version__, "numpy", numpy.__version__)
PY
}

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    if verify >/dev/null 2>&1; then
        echo "$VENV/bin/python"
        exit 0
    fi
    echo "surprise venv at $VENV fails verification; rebuilding" >&2
fi

echo "building scikit-surprise venv at $VENV" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]}" >&2
verify >&2
echo "$WANT" > "$STAMP"
echo "$VENV/bin/python"
