#!/usr/bin/env bash
# Installs the system packages the test suite starts for real: redis-server
# (the L2 tier). Run by `npm test` before vitest; a no-op when they are present.
set -euo pipefail

needed=()
command -v redis-server >/dev/null 2>&1 || needed+=(redis-server)

if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test dependencies: ${needed[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${needed[@]}" >&2
else
  echo "the test suite needs: ${needed[*]}" >&2
  echo "install them first, e.g.: sudo apt-get install -y ${needed[*]}" >&2
  exit 1
fi
