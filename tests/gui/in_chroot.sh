#!/usr/bin/env bash
# Runs a command inside a chroot that tests/gui/build_chroot.sh built, with this checkout at /src (read-only) and a
# writable folder of the host at /scratch (the first argument after the suite):
#   tests/gui/in_chroot.sh SUITE HOST_FOLDER COMMAND [ARGUMENTS...]
# The mounts live in a private mount namespace, so they disappear when the command ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
suite=$1 work=$2
shift 2
root=.chroot/$suite
[ -f "$root/.gm-ready" ] || { echo "no $suite chroot: run tests/gui/build_chroot.sh $suite" >&2; exit 2; }
mkdir -p "$root/src" "$root/scratch" "$work"
exec unshare --mount --propagation private sh -c '
    root=$1 work=$2
    shift 2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs tmpfs "$root/tmp"
    mount --bind . "$root/src"
    mount -o remount,bind,ro "$root/src"
    mount --bind "$work" "$root/scratch"
    exec chroot "$root" env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin "$@"
' in_chroot "$root" "$(realpath "$work")" "$@"
