#!/usr/bin/env bash
# Makes sure Node.js (18 or later) and npm are here for the TypeScript client (clients/typescript).
# Installs them through apt where they are missing (as root, or with sudo), as ensure_services.sh
# does for Redis.
set -uo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if command -v apt-get >/dev/null && as_root apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null; then
    echo "ensure_node: installed $(node --version) and npm $(npm --version) through apt"
  else
    echo "ensure_node: node and npm are needed for the TypeScript client and could not be installed;" \
      "install Node.js 18 or later with npm (Debian/Ubuntu: apt-get install nodejs npm)" >&2
    exit 1
  fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "ensure_node: the TypeScript client needs Node.js 18 or later; this is $(node --version)" >&2
  exit 1
fi
exit 0
