#!/usr/bin/env bash
# Vendor the book's JavaScript so the rendered HTML makes no request to another origin.
#
#   bash book/tools/vendor_assets.sh [DEST]        (default DEST: book/_static/vendor, git-ignored)
#
# Fetches with `npm pack` (npm registry only) and unpacks:
#   DEST/require.js                      requirejs (MIT)
#   DEST/html-manager/*                  @jupyter-widgets/html-manager dist: embed-amd.js + icon fonts (BSD-3-Clause)
#   DEST/mathjax/*                       mathjax es5 build: tex-chtml.js + fonts/extensions (Apache-2.0)
#   DEST/licenses/<package>/             package.json and licence files of each package
# Idempotent: does nothing when DEST/.versions already names the pinned versions.
set -euo pipefail

HTML_MANAGER_VERSION=1.0.15   # matches ipywidgets 8 (widget protocol 2.1, controls 2.0.0)
REQUIREJS_VERSION=2.3.7
MATHJAX_VERSION=3.2.2

DEST=${1:-book/_static/vendor}
WANT="html-manager=${HTML_MANAGER_VERSION} requirejs=${REQUIREJS_VERSION} mathjax=${MATHJAX_VERSION}"

if [[ -f "${DEST}/.versions" && "$(cat "${DEST}/.versions")" == "${WANT}" ]]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "vendor_assets.sh: npm is required to vendor the book's JavaScript (apt-get install -y npm)" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
echo "vendoring ${WANT} into ${DEST}"
(cd "${tmp}" && npm pack --silent \
    "@jupyter-widgets/html-manager@${HTML_MANAGER_VERSION}" \
    "requirejs@${REQUIREJS_VERSION}" \
    "mathjax@${MATHJAX_VERSION}" >/dev/null)

unpack() {  # unpack <tgz> <dir>
    mkdir -p "$2" && tar -xzf "$1" -C "$2" --strip-components=1
}
unpack "${tmp}/jupyter-widgets-html-manager-${HTML_MANAGER_VERSION}.tgz" "${tmp}/hm"
unpack "${tmp}/requirejs-${REQUIREJS_VERSION}.tgz" "${tmp}/rj"
unpack "${tmp}/mathjax-${MATHJAX_VERSION}.tgz" "${tmp}/mj"

out="${tmp}/out"
mkdir -p "${out}/html-manager" "${out}/licenses"/{html-manager,requirejs,mathjax}
cp "${tmp}/rj/require.js" "${out}/require.js"
# AMD bundle + its icon fonts; no source maps, no non-AMD bundle
find "${tmp}/hm/dist" -maxdepth 1 -type f \
    \( -name 'embed-amd.js' -o -name 'libembed-amd.js' -o -name '*.LICENSE.txt' \
       -o -name '*.woff2' -o -name '*.woff' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) \
    -exec cp {} "${out}/html-manager/" \;
cp -r "${tmp}/mj/es5" "${out}/mathjax"
cp "${tmp}/hm/package.json" "${out}/licenses/html-manager/"
cp "${tmp}/rj/package.json" "${tmp}/rj/README.md" "${out}/licenses/requirejs/"
cp "${tmp}/mj/package.json" "${tmp}/mj/LICENSE" "${out}/licenses/mathjax/"
echo "${WANT}" > "${out}/.versions"

# replace DEST in one step so an interrupted run never leaves a half-filled folder behind
mkdir -p "$(dirname "${DEST}")"
rm -rf "${DEST}.old"
[[ -e "${DEST}" ]] && mv "${DEST}" "${DEST}.old"
mv "${out}" "${DEST}"
rm -rf "${DEST}.old"
echo "vendored: $(du -sh "${DEST}" | cut -f1)"
