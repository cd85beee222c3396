# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv if needed and installs the project with pinned versions.
# `make demo` opens napari with the plugin on the FIRST sample where a window can be opened,
# and runs the command-line demo (`make demo-cli`) where none can.

PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip
CONSTRAINTS = requirements/constraints.txt
# What napari's Qt needs on a headless Debian/Ubuntu machine (tests run under Xvfb).
APT_PACKAGES = xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
	libxcb-randr0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-cursor0 libxkbcommon-x11-0 \
	libxcb-xfixes0 libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libglib2.0-0 libfontconfig1 libdbus-1-3

.PHONY: demo demo-cli test system-packages lint clean

demo: $(VENV)/.demo-installed
	@if $(VENV)/bin/python -m napari_anomalymatch._napari.demo --check-display >/dev/null 2>&1; then \
		$(VENV)/bin/python -m napari_anomalymatch._napari.demo; \
	else \
		echo "napari cannot open a window here (no display, or Qt's system libraries missing:"; \
		echo "see 'make system-packages'): running the command-line demo instead"; \
		$(MAKE) --no-print-directory demo-cli; \
	fi

demo-cli: $(VENV)/.demo-installed
	$(VENV)/bin/anomalymatch demo

test: system-packages $(VENV)/.test-installed
	$(VENV)/bin/python -m pytest

$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: $(VENV)/bin/pip pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet --no-cache-dir -c $(CONSTRAINTS) -e ".[demo,napari]"
	touch $@

$(VENV)/.test-installed: $(VENV)/bin/pip pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet --no-cache-dir -c $(CONSTRAINTS) -e ".[testing,demo]"
	touch $@

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) anomalymatch-demo anomalymatch-demo-napari build src/*.egg-info
