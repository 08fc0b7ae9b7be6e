#!/usr/bin/env bash
# requirements.lock: the runtime dependencies (with the s3 extra, without dev), pinned
# and hashed for CPython 3.11 on Linux, which the image and the packaging test install.
#
#   devenv/lock.sh             write it after a change to pyproject.toml; pins that
#                              still satisfy the constraints are kept
#   devenv/lock.sh --upgrade   the same, moving every pin to its newest release
#   devenv/lock.sh --check     fail if pyproject.toml and the lock disagree (make lint)
#
# The check compiles again with the lock itself as the starting point, into a scratch
# copy: uv keeps each pin, and its hashes, that still satisfies pyproject.toml, so a
# newer release on PyPI changes nothing and only a real disagreement shows as a diff.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
LOCK=requirements.lock

compile() {  # $1: output file; the rest go to uv
  local out=$1
  shift
  # Bounded: uv asks PyPI for metadata it has not cached yet.
  timeout 180 "$UV" pip compile pyproject.toml --extra s3 --generate-hashes \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --custom-compile-command "make lock" --quiet --output-file "$out" "$@"
}

if [[ ${1:-} == --check ]]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  cp "$LOCK" "$scratch/$LOCK"
  compile "$scratch/$LOCK"
  if ! diff -u "$LOCK" "$scratch/$LOCK"; then
    echo "$LOCK is out of step with pyproject.toml: run 'make lock' and commit it" >&2
    exit 1
  fi
  echo "$LOCK is in step with pyproject.toml"
  exit 0
fi
compile "$LOCK" "$@"
