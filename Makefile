# The README's two commands: `make demo` and `make test`. Both set everything up and are safe to rerun.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VT := $(VENV)/bin/videotranslator
STAMP := $(VENV)/.installed
APT_PACKAGES := ffmpeg espeak-ng fonts-dejavu-core
DEMO_VIDEO := var/demo/jfk.mp4

.PHONY: demo test test-gpu setup apt apt-test venv models clean-cache bench

demo: setup $(DEMO_VIDEO)
	$(VT) translate $(DEMO_VIDEO) --to ru -o out/demo
	@echo "Outputs are in $$(pwd)/out/demo"

PYTEST_ARGS ?= -m "not gpu"
APT_TEST_PACKAGES := chromium rabbitmq-server
test: setup apt-test
	$(PY) -m pytest $(PYTEST_ARGS)

test-gpu: setup
	$(PY) -m pytest -m gpu

setup: apt venv models

apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(APT_PACKAGES); \
	fi

# The browser tests drive Debian's chromium (never `playwright install`); the bridge tests need RabbitMQ.
apt-test:
	@if ! dpkg -s $(APT_TEST_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(APT_TEST_PACKAGES); \
	fi

venv: $(STAMP)

# llama-cpp-python builds from source (~12 min on 2 cores) once; pip keeps the built wheel in its cache.
$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

models: venv
	$(VT) models pull

$(DEMO_VIDEO): tests/data/jfk.flac | apt
	@mkdir -p $(dir $@)
	ffmpeg -hide_banner -loglevel error -y -f lavfi -i color=c=navy:s=640x360:r=25:d=13 -i tests/data/jfk.flac \
	  -af apad -map 0:v -map 1:a -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k -t 13 $@

bench: setup
	$(PY) bench/e2e.py

clean-cache:
	rm -rf var/cache
