#!/usr/bin/env bash
# Build the sandbox images: containers/NAME.def -> containers/NAME.sif, without Docker Hub.
#
# The .def files bootstrap from Debian's archive (Bootstrap: debootstrap), so nothing comes
# from a container registry. Idempotent: an image newer than its .def is kept (a build
# takes ~1.5 min; the result is a single SIF file, as Apptainer wants images on shared
# filesystems). Building needs root (debootstrap); the images then run unprivileged.
#
#   containers/build.sh            every image
#   containers/build.sh tools      one
#
# Exit codes: 0 built (or up to date); 2 cannot build here (no apptainer, debootstrap or
# root): the Apptainer tests then skip with the reason; anything else: a build failed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
APPTAINER=${MATRIXHPC_APPTAINER:-$(command -v apptainer || echo /opt/matrixhpc/apptainer/usr/bin/apptainer)}

if [ ! -x "$APPTAINER" ]; then
    echo "containers/build.sh: apptainer not found (scripts/install-sandbox-tools.sh installs it)" >&2
    exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    echo "containers/build.sh: debootstrap not found (apt-get install debootstrap)" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "containers/build.sh: building images needs root (debootstrap)" >&2
    exit 2
fi
export PATH="$PATH:/usr/sbin:/sbin"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for def in "$HERE"/*.def; do names+=("$(basename "$def" .def)"); done
fi
for name in "${names[@]}"; do
    def="$HERE/$name.def"
    sif="$HERE/$name.sif"
    [ -f "$def" ] || { echo "containers/build.sh: no $def" >&2; exit 1; }
    if [ -f "$sif" ] && [ "$sif" -nt "$def" ]; then
        continue
    fi
    echo "containers/build.sh: building $sif (about a minute and a half)" >&2
    tmp="$sif.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    (cd "$HERE" && "$APPTAINER" -q build --force "$tmp" "$def" >"$HERE/.build-$name.log" 2>&1) || {
        tail -20 "$HERE/.build-$name.log" >&2
        exit 1
    }
    mv -f "$tmp" "$sif"
    trap - EXIT
done
