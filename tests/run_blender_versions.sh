#!/usr/bin/env bash
# Runs the test suite on older Blender releases through their bpy wheels, each in its own venv (not part of CI):
#   tests/run_blender_versions.sh            4.5.15 and 4.2.23
#   tests/run_blender_versions.sh 4.5.15     one of them
# Extra arguments after the version go to pytest (e.g. `tests/run_blender_versions.sh 4.2.23 -x tests/blender`).
# The 4.2.23 wheel declares an unpinned numpy and pip would pull numpy 2, while Blender 4.2 ships 1.26, so numpy<2 is
# pinned there; that wheel is also built without audio, and the sound tests skip themselves on it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

run_one() {
    local version=$1
    shift
    local minor=${version%.*}
    local venv=".venv-bpy${minor//./}"
    # Installed again whenever the pins (or `make setup`) change.
    local wanted
    wanted="$version $(cat requirements.txt requirements-dev.txt Makefile | sha256sum | cut -c1-16)"
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$wanted" ]; then
        "$PYTHON" -m venv "$venv"
        # The project's pins with this Blender instead of the default one, plus what `make setup` installs apart.
        grep -v '^bpy==' requirements.txt >"$venv/requirements.txt"
        cp requirements-dev.txt "$venv/requirements-dev.txt"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$venv/requirements-dev.txt" "bpy==$version" "numpy<2"
        local apart
        apart=$(grep -o -- '--no-deps [^ ]*' Makefile | cut -d' ' -f2 || true)
        [ -z "$apart" ] || "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps $apart
        echo "$wanted" >"$venv/.installed"
    fi
    echo "== bpy $version =="
    "$venv/bin/python" -c 'import bpy, numpy; print("Blender", bpy.app.version_string, "numpy", numpy.__version__)'
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
}

if [ $# -gt 0 ]; then
    run_one "$@"
else
    status=0
    run_one 4.5.15 || status=1
    run_one 4.2.23 || status=1
    exit $status
fi
