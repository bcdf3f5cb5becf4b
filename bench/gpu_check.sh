#!/usr/bin/env bash
# One command on a bare GPU machine: install the carried wheels, run every GPU check, write the JSON.
#
#   bash bench/gpu_check.sh [OUT_DIR] [bench.gpu_check options ...]
#
# OUT_DIR (default $OUT, else bench-out/gpu-check) receives gpu_check.json and gpu_check.log (all output).
# Needs the folder `make gpu-wheels` fills (.gpu-wheels: open_clip, ftfy, wcwidth, mmh3, timm, the Spark
# Connect client, pysail as xz, this package's wheel). They are installed with pip --target into a fresh
# folder (no index, no dependencies, the package's Python pin ignored: the machine runs 3.12), pysail is
# unpacked beside them, and bench/ is copied to a scratch folder and run from there, so that laion_spark
# is the installed wheel, not the checkout. Everything, install included, ends within GPU_CHECK_SECONDS.
#
# Environment: PYTHON (python3), GPU_WHEELS (.gpu-wheels in this checkout), GPU_SITE
# (/tmp/laion-spark-site), GPU_CHECK_SECONDS (470).
# Exit status: bench.gpu_check's (0 all ran and passed, 1 a section failed or a check did not pass),
# 2 with one error line when the wheels are missing or do not install.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$repo/bench-out/gpu-check}
if [ $# -gt 0 ] && [[ $1 != --* ]]; then
    out=$1
    shift
fi
python=${PYTHON:-python3}
wheels=${GPU_WHEELS:-$repo/.gpu-wheels}
site=${GPU_SITE:-/tmp/laion-spark-site}
total=${GPU_CHECK_SECONDS:-470}
if ! command -v "$python" >/dev/null; then
    echo "error: no Python named $python here (set PYTHON)" >&2
    exit 2
fi
if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "error: no wheels in $wheels: run make gpu-wheels in the checkout and carry .gpu-wheels" >&2
    exit 2
fi
if ! mkdir -p "$out"; then
    echo "error: cannot create the output folder $out" >&2
    exit 2
fi
out=$(cd "$out" && pwd)

check() {
    local started=$SECONDS
    echo "gpu_check.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ), $($python -V 2>&1) at $(command -v "$python")"
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    rm -rf "$site"
    if ! $python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --ignore-requires-python --target "$site" "$wheels"/*.whl; then
        echo "error: the wheels in $wheels did not install into $site (pip's message above)" >&2
        return 2
    fi
    if [ -f "$wheels/pysail.tar.xz" ]; then
        $python -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
            "$wheels/pysail.tar.xz" "$site" || echo "warning: pysail did not unpack: the sail section will skip"
    fi
    local installed=$((SECONDS - started))
    echo "installed $(ls "$wheels" | tr '\n' ' ')into $site in ${installed} s"

    local work
    work=$(mktemp -d)
    cp -r "$repo/bench" "$work/bench"
    local deadline=$((total - installed - 10))
    (cd "$work" && GPU_WHEELS_MANIFEST=$wheels/MANIFEST.json PYTHONPATH=$site PYTHONUNBUFFERED=1 \
        timeout -k 10 $((deadline + 15)) $python -m bench.gpu_check --out "$out/gpu_check.json" \
        --deadline-s "$deadline" "$@")
    local rc=$?
    rm -rf "$work"
    echo "gpu_check.sh: exit $rc after $((SECONDS - started)) s"
    return $rc
}

check "$@" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
