# `make demo`: set up .venv and conduct the bundled demo (out/demo.blend, out/demo.mp4).
# `make test`: set up .venv and run the whole test suite. Both are safe to run again.
# `make addon`: the Blender extension zips, one per platform, in dist/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench addon

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# tinysoundfont declares pyaudio for live playback only; building it needs PortAudio's C headers.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps tinysoundfont==0.3.7
	touch $@

demo: $(STAMP)
	$(PY) -m gm_blender_addon generate gm_blender_addon/data/demo/demo.ogg \
		--out out/demo.blend --keypoints out/demo.npz --render out/demo.mp4

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/backbone.py

addon: $(STAMP)
	$(PY) build_addon.py --out dist
