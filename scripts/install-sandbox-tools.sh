#!/usr/bin/env bash
# Install the tool-sandbox backends for this project: bubblewrap (Debian) and Apptainer.
#
# Debian 12 has no Apptainer package, so Debian sid's apptainer .deb is extracted with sid's
# libc into a private prefix and patchelf'd to use that libc (shared/notes/sandboxes.md).
# The system's apt sources are never touched: sid is read through a private source list and
# private package lists; the .debs are kept in apt's own cache (/var/cache/apt/archives), so a
# reinstall downloads nothing.
#
#   PREFIX (default /opt/matrixhpc/apptainer-1.4.5; /opt/matrixhpc/apptainer links to it)
#     usr/bin/apptainer      what matrixhpc runs (MATRIXHPC_APPTAINER overrides the lookup)
#     usr/bin/singularity    -> apptainer (spython 0.3 calls `singularity`)
#     sid-libc/              sid's libc, the interpreter and DT_RPATH of the patched binaries
#
# Idempotent: exits at once when everything is in place.
# Exit codes: 0 installed (or already present); 2 cannot install here (not root, no apt-get,
# no network to the Debian archive): the sandbox tests then skip with the reason; else failed.
set -euo pipefail

VERSION=1.4.5
ROOT=${MATRIXHPC_TOOLS:-/opt/matrixhpc}
PREFIX=$ROOT/apptainer-$VERSION
LINK=$ROOT/apptainer
STATE=/var/lib/matrixhpc/apt-sid
CACHE=/var/cache/apt/archives
# from bookworm: the sandboxes, patchelf for the relocation, what apptainer runs (squashfuse
# mounts SIF unprivileged, mksquashfs builds images, uidmap for --fakeroot), image builders
PACKAGES=(bubblewrap patchelf squashfs-tools squashfuse fuse2fs fuse3 uidmap libseccomp2
    libsqlite3-0 debootstrap busybox-static util-linux)

apptainer_ok() { [ -x "$PREFIX/usr/bin/apptainer" ] && "$PREFIX/usr/bin/apptainer" --version >/dev/null 2>&1; }
tools_ok() {
    for bin in bwrap mksquashfs squashfuse debootstrap busybox prlimit; do
        command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || return 1
    done
}

if apptainer_ok && tools_ok && [ -L "$LINK" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-sandbox-tools.sh: apt-get not found; cannot install the sandbox tools here" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-sandbox-tools.sh: must run as root to install packages" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600)
if ! tools_ok; then
    apt-get "${APT_OPTS[@]}" update -qq || exit 2
    apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${PACKAGES[@]}"
fi

# sid through a private source list: the system's apt configuration stays as it was
mkdir -p "$STATE/lists/partial" "$CACHE"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
    >"$STATE/sources.list"
SID=(-o "Dir::Etc::SourceList=$STATE/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$STATE/lists" -o Dir::State::status=/dev/null)

deb_of() { # the cached .deb of a sid package at its sid version, downloaded once
    local pkg=$1 version file
    version=$(apt-cache "${SID[@]}" show "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
    [ -n "$version" ] || return 1
    file="$CACHE/${pkg}_${version//:/%3a}_amd64.deb"
    if [ ! -s "$file" ]; then
        (cd "$CACHE" && apt-get "${SID[@]}" download "$pkg=$version" >/dev/null 2>&1) || return 1
    fi
    echo "$file"
}

apptainer_deb=$(deb_of apptainer || true)
if [ -z "$apptainer_deb" ]; then # stale private lists: read sid once more
    apt-get "${SID[@]}" -o APT::Get::List-Cleanup=0 update -qq || exit 2
    apptainer_deb=$(deb_of apptainer) || { echo "install-sandbox-tools.sh: no apptainer in sid" >&2; exit 2; }
fi
libc_deb=$(deb_of libc6) || { echo "install-sandbox-tools.sh: cannot download sid's libc6" >&2; exit 2; }
case "$apptainer_deb" in
*"apptainer_$VERSION"*) ;;
*) echo "install-sandbox-tools.sh: note: sid now has $(basename "$apptainer_deb"), not $VERSION" >&2 ;;
esac

mkdir -p "$ROOT"
STAGE=$(mktemp -d "$ROOT/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
dpkg-deb -x "$apptainer_deb" "$STAGE"
mkdir -p "$STAGE/sid-libc"
dpkg-deb -x "$libc_deb" "$STAGE/sid-libc"
# patch with the final paths: the interpreter is an absolute path
LIBC=$PREFIX/sid-libc/usr/lib/x86_64-linux-gnu
for bin in "$STAGE/usr/bin/apptainer" "$STAGE/usr/lib/x86_64-linux-gnu/apptainer/bin/starter"; do
    # DT_RPATH (--force-rpath), not RUNPATH: with RUNPATH `--unsquash` breaks
    patchelf --set-interpreter "$LIBC/ld-linux-x86-64.so.2" --force-rpath \
        --set-rpath "$LIBC:/lib/x86_64-linux-gnu" "$bin"
done
# the relocated tree looks for its configuration and state relative to usr/
ln -sfn ../etc "$STAGE/usr/etc"
ln -sfn ../../etc "$STAGE/usr/lib/etc"
mkdir -p "$STAGE/usr/lib/var/lib/apptainer/mnt/session"
ln -sfn apptainer "$STAGE/usr/bin/singularity"
# no systemd as init here (nor in most batch jobs): cgroup limits go through cgroupfs
sed -i 's/^systemd cgroups = yes/systemd cgroups = no/' "$STAGE/etc/apptainer/apptainer.conf"

rm -rf "$PREFIX"
mv "$STAGE" "$PREFIX"
trap - EXIT
chmod 755 "$PREFIX"
ln -sfn "apptainer-$VERSION" "$LINK"
apptainer_ok || { echo "install-sandbox-tools.sh: $PREFIX/usr/bin/apptainer does not run" >&2; exit 1; }
echo "install-sandbox-tools.sh: $("$PREFIX/usr/bin/apptainer" --version) in $PREFIX; $(bwrap --version)"
