#!/usr/bin/env bash
# Installs the system packages the test suite starts for real: redis-server
# (the L2 tier), and librdkafka-dev with gcc for the Kafka-protocol test broker
# (librdkafka's mock cluster in a small C launcher the harness compiles). Run
# by `npm test` before vitest; a no-op when they are present.
set -euo pipefail

needed=()
command -v redis-server >/dev/null 2>&1 || needed+=(redis-server)
test -f /usr/include/librdkafka/rdkafka_mock.h || needed+=(librdkafka-dev)
command -v gcc >/dev/null 2>&1 || needed+=(gcc libc6-dev)

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
