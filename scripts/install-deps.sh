#!/usr/bin/env bash
# Installs the Debian packages Vigil needs to build, test and run — only those
# that are missing. Runs as root directly, or through sudo otherwise.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liblmdb-dev libev-dev libprotobuf-c-dev protobuf-c-compiler
  libzstd-dev libcriterion-dev libedit-dev
  libssl-dev openssl valgrind
  clang libclang-rt-14-dev  # the fuzz build: clang, libFuzzer and the sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
else
  SUDO=(sudo)
fi

echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
