#!/usr/bin/env bash
# Builds, once, a Debian chroot under .chroot/SUITE holding Debian's own Blender (with numpy, which official builds embed), an X server without a screen (Xvfb),
# Mesa's software OpenGL (llvmpipe), xdotool and ImageMagick: a real Blender window on a machine with no display.
#   tests/gui/build_chroot.sh [trixie|sid]      (default trixie: Blender 4.3.2 on Python 3.13; sid: 5.2 on 3.14)
# Needs root and debootstrap. Run again, it does nothing unless the package list changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
suite=${1:-trixie}
root=.chroot/$suite
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=(blender python3-numpy xvfb xdotool imagemagick libgl1-mesa-dri libglx-mesa0 libegl-mesa0 mesa-utils x11-utils xauth
          fonts-dejavu-core procps)
wanted="$suite $mirror ${packages[*]}"
[ "$(cat "$root/.gm-ready" 2>/dev/null)" = "$wanted" ] && exit 0

command -v debootstrap >/dev/null || { echo "build_chroot.sh needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
if [ ! -x "$root/usr/bin/apt-get" ]; then
    mkdir -p .chroot
    debootstrap --variant=minbase "$suite" "$root.partial" "$mirror"
    mv "$root.partial" "$root"
fi
# Package scripts want /proc; a private mount namespace drops the mounts again when the command ends.
unshare --mount --propagation private sh -c '
    mount -t proc proc "$0/proc"
    chroot "$0" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    chroot "$0" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    chroot "$0" apt-get clean
' "$root" "${packages[@]}"
echo "$wanted" >"$root/.gm-ready"
