# Sourced by clients/generate and .ci/examples-check: installs the pinned client tools once and
# reuses them. Python packages come from PyPI (clients/python/requirements.txt) into a virtualenv,
# npm packages from npm (clients/typescript/package-lock.json) into clients/typescript/node_modules;
# both download caches live under $LINKGATE_CLIENTS_CACHE (default $HOME/.cache/linkgate-clients).
# Expects the working directory to be the repository root.

LINKGATE_CLIENTS_CACHE="${LINKGATE_CLIENTS_CACHE:-$HOME/.cache/linkgate-clients}"

# Prints the path of a virtualenv python with clients/python/requirements.txt installed. The
# virtualenv is named after the requirements' hash, so changing a pin builds a fresh one.
python_tools() {
  local requirements=clients/python/requirements.txt hash venv
  hash=$(sha256sum "$requirements" | cut -c1-12)
  venv="$LINKGATE_CLIENTS_CACHE/venv-$hash"
  if [ ! -e "$venv/.installed" ]; then
    rm -rf "$venv"
    mkdir -p "$LINKGATE_CLIENTS_CACHE"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --cache-dir "$LINKGATE_CLIENTS_CACHE/pip" -r "$requirements" >&2
    touch "$venv/.installed"
  fi
  printf '%s\n' "$venv/bin/python"
}

# Installs clients/typescript's locked npm packages (protoc-gen-es, the Connect runtime,
# TypeScript) unless node_modules already matches package-lock.json.
node_tools() {
  local dir=clients/typescript hash
  hash=$(sha256sum "$dir/package-lock.json" | cut -c1-12)
  if [ "$(cat "$dir/node_modules/.linkgate-lock" 2>/dev/null)" != "$hash" ]; then
    npm ci --prefix "$dir" --cache "$LINKGATE_CLIENTS_CACHE/npm" --no-audit --no-fund --loglevel=error >&2
    printf '%s\n' "$hash" >"$dir/node_modules/.linkgate-lock"
  fi
}
