#!/usr/bin/env bash
# Installs the Debian packages plateseg builds and tests against. Idempotent; silent when all is there.
set -euo pipefail

packages=(libsqlite3-dev libpng-dev libtiff-dev libzstd-dev libdnnl-dev pkg-config)
# The report test renders the HTML report in headless Chromium (make test sets this).
if [ "${PLATESEG_WITH_BROWSER:-0}" = 1 ]; then packages+=(chromium); fi

# The label-image export test opens the TIFFs with tifffile, as napari and Cellpose do.
if [ "${PLATESEG_WITH_BROWSER:-0}" = 1 ] && ! python3 -c 'import tifffile' 2>/dev/null; then
  echo "bootstrap: installing tifffile (PyPI)"
  python3 -m pip install -q tifffile
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
