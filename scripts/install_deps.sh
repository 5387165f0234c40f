#!/usr/bin/env bash
# Installs zerotrain's build dependencies from Debian packages (skips what is already there).
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache libopenblas-dev libopenmpi-dev openmpi-bin
      libyaml-cpp-dev nlohmann-json3-dev doctest-dev zlib1g-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
