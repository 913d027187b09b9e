#!/usr/bin/env bash
# Builds, once, a Debian chroot under .chroot/SUITE holding Debian's own Blender, an X server without a screen (Xvfb),
# Mesa's software OpenGL (llvmpipe) and ImageMagick: a real Blender window on a machine with no display.
#   tests/gui/build_chroot.sh [trixie|sid]      (default trixie: Blender 4.3.2 on Python 3.13; sid: 5.2.2 on 3.14)
# Needs root and debootstrap. Run again, it does nothing unless the package list changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
suite=${1:-trixie}
root=.chroot/$suite
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Blender with numpy, cattrs and requests (Blender 5.2's extension code imports the last two; Debian's package does
# not depend on them); Xvfb with xdpyinfo (to wait for it); Mesa's OpenGL; ImageMagick's `import` for screenshots.
packages=(blender python3-numpy python3-cattr python3-requests xvfb x11-utils libgl1-mesa-dri libglx-mesa0
          libegl-mesa0 imagemagick fonts-dejavu-core)
wanted="$suite $mirror ${packages[*]}"
[ "$(cat "$root/.gm-ready" 2>/dev/null)" = "$wanted" ] && exit 0

if ! command -v debootstrap >/dev/null; then
    echo "build_chroot.sh needs debootstrap (apt-get install debootstrap)" >&2
    exit 2
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
    mkdir -p .chroot
    debootstrap --variant=minbase "$suite" "$root.partial" "$mirror"
    mv "$root.partial" "$root"
fi
# Package scripts want /proc; a private mount namespace drops the mounts again when the command ends.
# The Debian mirror this machine kind reaches may serve a snapshot whose Release file has passed its Valid-Until date.
unshare --mount --propagation private sh -ec '
    mount -t proc proc "$0/proc"
    chroot "$0" env DEBIAN_FRONTEND=noninteractive apt-get update -q -o Acquire::Check-Valid-Until=false
    chroot "$0" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    chroot "$0" apt-get clean
' "$root" "${packages[@]}"
echo "$wanted" >"$root/.gm-ready"
