#!/usr/bin/env bash
# Install what the end-to-end tests need outside Python: Debian's Chromium (driven by
# Playwright through executable_path, never `playwright install`).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
