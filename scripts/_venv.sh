# Sourced by scripts/test and scripts/serve: cd to the repo, make .venv, install the project.
# Usage: ensure_venv [extra]   (e.g. ensure_venv test  ->  pip install -e '.[test]')

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ensure_venv() {
  local extra="${1:-}" py="${PYTHON:-python3}" spec="." stamp hash
  if [ ! -x .venv/bin/python ]; then
    command -v "$py" >/dev/null || { echo "error: $py not found (Python 3.11+ is needed)" >&2; return 1; }
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || { echo "error: $("$py" -V 2>&1) is too old; Python 3.11+ is needed (set PYTHON=...)" >&2; return 1; }
    echo "creating .venv ..." >&2
    if ! "$py" -m venv .venv; then
      rm -rf .venv
      echo "error: '$py -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
      return 1
    fi
  fi
  [ -n "$extra" ] && spec=".[$extra]"
  hash="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
  stamp=".venv/.installed-${extra:-base}"
  # A [test] install also satisfies a plain one.
  for s in "$stamp" .venv/.installed-test; do
    if [ "$(cat "$s" 2>/dev/null)" = "$hash" ] && [ -x .venv/bin/viewer-service ]; then
      return 0
    fi
    [ -n "$extra" ] && break
  done
  # On a terminal pip shows what it fetches and builds; elsewhere (CI logs) it stays quiet.
  local quiet=-q
  [ -t 2 ] && quiet=
  echo "installing viewer-service${extra:+ [$extra]} into .venv (the first time takes a minute or two) ..." >&2
  .venv/bin/python -m pip install $quiet --disable-pip-version-check -e "$spec" 1>&2 || return 1
  echo "installed." >&2
  rm -f .venv/.installed-*
  echo "$hash" > "$stamp"
}
