#!/usr/bin/env bash
# check-format.sh: fails when a tracked C file differs from what clang-format (with the
# repository's .clang-format) makes of it. `scripts/check-format.sh --fix` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(--dry-run -Werror)
[[ ${1:-} == --fix ]] && mode=(-i)
mapfile -t files < <(git ls-files '*.c' '*.h')
clang-format "${mode[@]}" "${files[@]}"
echo "clang-format: ${#files[@]} files checked"
