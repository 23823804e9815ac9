#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver for tests/test_book_browser.py.
# Does nothing when /usr/bin/chromium and /usr/bin/chromedriver are already there.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install_browser.sh: chromium + chromium-driver are missing and this user cannot install them;" >&2
    echo "  run as root: apt-get update && apt-get install -y chromium chromium-driver" >&2
    exit 2
fi
echo "installing chromium and chromium-driver (apt-get, about 2 minutes)"
${SUDO} apt-get update -q
DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -q chromium chromium-driver
