#!/usr/bin/env bash
# CUDA portability check: tilebridge's operator library (its Triton sources, unchanged) on a CUDA GPU
# through stock Triton, judged against ATen's CUDA kernels by the OpInfo harness (`tilebridge align`).
#
#   bash tools/device/portability.sh          # from the repository root; results in $OUT
#
# tilebridge is used from the checkout (PYTHONPATH), not installed, so its `cpu` Triton backend is not
# registered and stock Triton picks its CUDA driver. Missing pure-Python packages (expecttest, which
# torch.testing._internal needs) come from wheels in .whl/ when present.
#
# Steps: versions; a smoke test (common ops, library on vs ATen, in the background); the OpInfo harness
# split over $TB_SHARDS processes that share Triton's disk cache; their JSONs added up into $OUT.
# The whole script ends within $TB_TOTAL seconds whatever happens: shards stop starting OpInfos at a
# common deadline, a time limit cuts the running one (its finished samples are kept, its name recorded),
# each shard writes its JSON after every OpInfo, and `timeout` backs all of that up. A shard whose GPU
# context fails (a sticky CUDA error) exits with 3 and a new process resumes after that OpInfo.
#
# Knobs (environment): TB_DEVICE=cuda|cpu (cpu: the same script as a rehearsal on a machine without a GPU),
# TB_TOTAL seconds (330), TB_SHARDS (14), TB_LIMIT samples per OpInfo, dtype and variant (3), TB_DTYPES,
# TB_VARIANTS, TB_OP_TIMEOUT seconds per OpInfo (60), TB_OPS (a comma list of OpInfos; default all).
set -u
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }

DEVICE=${TB_DEVICE:-cuda}
TOTAL=${TB_TOTAL:-330}
SHARDS=${TB_SHARDS:-14}
LIMIT=${TB_LIMIT:-3}
DTYPES=${TB_DTYPES:-float32,float16,bfloat16,int64,bool}
VARIANTS=${TB_VARIANTS:-sample,out,inplace,noncontiguous,grad}
OP_TIMEOUT=${TB_OP_TIMEOUT:-60}
OPS=${TB_OPS:-}
RESERVE=$(( TOTAL / 5 > 25 ? TOTAL / 5 : 25 ))   # after the shards: merge, report, archive
DEADLINE=$(( START + TOTAL - RESERVE ))            # no OpInfo starts after this (unix time)

OUT=${OUT:-$PWD/results/portability}
mkdir -p "$OUT"
rm -f "$OUT"/{log.txt,smoke.json,"$DEVICE".json,"$DEVICE"-report.md,portability.md,shards.tar.gz}
WORK=$(mktemp -d /tmp/tb-portability.XXXXXX)
exec > >(tee "$OUT/log.txt") 2>&1
TEE=$!

export PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR="$WORK/triton-cache" TILEBRIDGE_CACHE_DIR="$WORK/tilebridge-cache"
export PYTHONPATH="$PWD"
if [ "$DEVICE" = cuda ]; then
    export CUDA_LAUNCH_BLOCKING=1   # a faulting kernel is reported at its own launch, so the right sample is blamed
fi

echo "== portability run on $DEVICE: $(date -u +%FT%TZ), budget ${TOTAL}s, $SHARDS shards, limit $LIMIT"
echo "   dtypes $DTYPES; variants $VARIANTS; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && { nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; }

if ! python3 -c "import expecttest" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
            && export PYTHONPATH="$PWD:$WORK/site"
    else
        echo "!! expecttest is missing and no .whl/ was carried: the OpInfo harness cannot import torch.testing._internal"
    fi
fi

python3 - "$DEVICE" <<'EOF'
import sys
import torch, triton
device = sys.argv[1]
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, available "
      f"{torch.cuda.is_available()}), triton {triton.__version__}")
driver = type(triton.runtime.driver.active).__module__
print(f"triton backends {sorted(triton.backends.backends)}, active driver {driver}")
if device == "cuda" and "nvidia" not in driver:
    print("!! triton's active driver is not NVIDIA's: is tilebridge pip-installed here (its `cpu` backend)?")
try:
    import tilebridge.compat
    for message in tilebridge.compat.check_versions():
        print("   note:", message)
    from tilebridge.ops.registry import UNAVAILABLE, entries
    print(f"operator table: {len(entries())} overloads; modules that failed to import: {UNAVAILABLE or 'none'}")
except Exception as error:
    print(f"!! tilebridge's operator table did not load: {type(error).__name__}: {error}")
EOF

echo "== smoke (background) and the OpInfo harness in $SHARDS shards, until $(( DEADLINE - START ))s"
timeout -k 5 $(( TOTAL - RESERVE )) python3 -m tilebridge.tools.smoke --device "$DEVICE" --json "$OUT/smoke.json" \
    > "$WORK/smoke.txt" 2>&1 &
SMOKE=$!

FIRST=()
[ -f docs/pytorch-alignment.json ] && FIRST=(--first-from docs/pytorch-alignment.json)
SELECT=()
[ -n "$OPS" ] && SELECT=(--ops "$OPS")
run_shard() {  # one shard, restarted after a device failure (exit 3) while time is left
    local i=$1 left rc
    while :; do
        left=$(( DEADLINE - $(date +%s) ))
        [ "$left" -gt 10 ] || break
        OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout -k 5 $(( left + 15 )) python3 -m tilebridge align \
            --device "$DEVICE" --shard "$i/$SHARDS" "${FIRST[@]}" "${SELECT[@]}" --dtypes "$DTYPES" \
            --variants "$VARIANTS" --limit "$LIMIT" --deadline "$DEADLINE" --op-timeout "$OP_TIMEOUT" \
            --json "$WORK/shard$i.json" --resume --progress >> "$WORK/shard$i.log" 2>&1
        rc=$?
        echo "[shard $i exited $rc at $(( $(date +%s) - START ))s]" >> "$WORK/shard$i.log"
        [ "$rc" -eq 3 ] || break
    done
}
shards=()
for i in $(seq 0 $(( SHARDS - 1 ))); do run_shard "$i" & shards+=($!); done
wait "${shards[@]}" "$SMOKE"
echo "== shards done at $(elapsed)s"

echo "== smoke"
cat "$WORK/smoke.txt"
echo "== the last lines of each shard"
for log in "$WORK"/shard*.log; do echo "-- $(basename "$log")"; tail -n 3 "$log"; done

echo "== merge"
shopt -s nullglob
parts=("$WORK"/shard*.json)
if [ ${#parts[@]} -gt 0 ]; then
    timeout -k 5 $(( RESERVE - 10 )) python3 -m tilebridge align --merge "${parts[@]}" --json "$OUT/$DEVICE.json" \
        --markdown "$OUT/$DEVICE-report.md" --portability "$OUT/portability.md" \
        $( [ -f docs/pytorch-alignment.json ] && echo --cpu-json docs/pytorch-alignment.json )
    echo "== portability section (for docs/pytorch-alignment.md)"
    cat "$OUT/portability.md" 2>/dev/null
else
    echo "!! no shard wrote a JSON: see the shard logs above (and in $OUT/shards.tar.gz)"
fi
tar czf "$OUT/shards.tar.gz" -C "$WORK" $(cd "$WORK" && ls shard* smoke.txt 2>/dev/null)
echo "== in short"
tail -n 1 "$WORK/smoke.txt"
[ -f "$OUT/$DEVICE.json" ] && python3 - "$OUT/$DEVICE.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
total = {o: sum(c.get(o, 0) for c in data["by_dtype"].values()) for o in ("PASS", "FAIL", "FALLBACK", "NOT_HIT")}
print(f"harness: {total}; {len(data['served_ops_without_fail'])} aten ops served with 0 FAIL, "
      f"{len(data['ops_with_fail'])} with a FAIL; OpInfos {len(data['done'])} done, {len(data['cut'])} cut, "
      f"{len(data['fatal'])} device failures, of {len(data['planned'])}")
EOF
echo "== done in $(elapsed)s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
rm -rf "$WORK"
exec 1>&- 2>&-
wait "$TEE"
