#!/bin/sh
# Inside the chroot: an X server without a screen (Xvfb, software OpenGL) and a real Blender window on it, driven by
# drive_window.py with simulated events. The checkout is at /src (tests/gui/in_chroot.sh).
#   window_session.sh PROFILE OUT_DIR        PROFILE: a Blender user folder with the extension installed
set -eu
profile=$1 out=$2
export BLENDER_USER_RESOURCES="$profile" LIBGL_ALWAYS_SOFTWARE=1 DISPLAY=:99
Xvfb :99 -screen 0 1600x900x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $xvfb' EXIT
for _ in $(seq 50); do
    xdpyinfo >/dev/null 2>&1 && break
    sleep 0.2
done
timeout 1800 blender -p 0 0 1600 900 --enable-event-simulate --python /src/tests/gui/drive_window.py -- "$out" \
    >"$out/blender.log" 2>&1
