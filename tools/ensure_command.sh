#!/usr/bin/env bash
# Usage: tools/ensure_command.sh COMMAND DEBIAN_PACKAGE...
# Installs the Debian packages with apt-get when COMMAND is not on PATH (as root, or through
# sudo). Used by the Makefile for npm (web assets) and chromium (the browser test).
set -euo pipefail
cmd=$1; shift
if command -v "$cmd" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "error: '$cmd' is missing and cannot be installed without root; install: $*" >&2; exit 1
fi
echo "installing $* (for '$cmd') with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
command -v "$cmd" >/dev/null 2>&1 || { echo "error: '$cmd' still missing after installing $*" >&2; exit 1; }
