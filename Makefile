# The README's two commands: `make demo` and `make test`. Both set everything up and are safe to rerun.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VT := $(VENV)/bin/videotranslator
STAMP := $(VENV)/.installed
# colobot-common-sounds: real music (.ogg, GPL-3+, used in place, never copied) for the separation tests and bench.
APT_PACKAGES := ffmpeg espeak-ng fonts-dejavu-core colobot-common-sounds
DEMO_VIDEO := var/demo/jfk.mp4

# llama-cpp-python has no binary wheel on PyPI, so it is built here, once per set of build flags, into a
# wheelhouse keyed by those flags (pip's own cache is keyed by the sdist alone, which is how a wheel built
# natively on one machine reaches another and dies there with SIGILL). The default build is portable:
# no -march=native and no AMX kernels (ggml's AMX path segfaults on Sapphire Rapids and later), with
# AVX2/FMA/F16C/BMI2 where the CPU has them (x86-64-v3) and plain SSE otherwise. Override LLAMA_CMAKE_ARGS
# for a native build (see docs/BENCHMARKS.md for what each costs).
LLAMA_VERSION := 0.3.36
LLAMA_X86_V3 := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo && grep -qw bmi2 /proc/cpuinfo && echo yes)
LLAMA_PORTABLE := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
ifeq ($(LLAMA_X86_V3),yes)
LLAMA_CMAKE_ARGS ?= $(LLAMA_PORTABLE)
else
LLAMA_CMAKE_ARGS ?= $(LLAMA_PORTABLE) -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF
endif
LLAMA_TAG := $(shell printf '%s' '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA_WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/videotranslator/wheels/llama-cpp-python-$(LLAMA_TAG)
LLAMA_STAMP := $(VENV)/.llama-$(LLAMA_TAG)

.PHONY: demo test test-gpu setup apt services venv llama models clean-cache bench

demo: setup $(DEMO_VIDEO)
	$(VT) translate $(DEMO_VIDEO) --to ru -o out/demo
	@echo "Outputs are in $$(pwd)/out/demo"

PYTEST_ARGS ?= -m "not gpu"
test: setup services
	$(PY) -m pytest $(PYTEST_ARGS)

# The GPU check (tests/gpu, docs/BENCHMARKS.md "GPU check"): a few minutes on one NVIDIA GPU; skips without CUDA.
# VT_TEST_VLLM_MODEL=<folder of a small instruction model> for the vLLM checks; figures in var/gpu-report.json.
test-gpu: setup
	$(PY) -m pytest -m gpu tests/gpu -rs

setup: apt venv models

apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(APT_PACKAGES); \
	fi

# What the tests talk to: RabbitMQ, PostgreSQL (role vt_test, database test) and Debian's chromium for the
# browser tests (never `playwright install`); installed with apt and started when they are down.
services:
	@bash .ci/services.sh

venv: $(STAMP)

$(STAMP): pyproject.toml $(LLAMA_STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Built once per flag set (about 12 minutes on 2 cores), then reinstalled from the wheelhouse in seconds.
$(LLAMA_STAMP):
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) with: $(LLAMA_CMAKE_ARGS)"; \
	  mkdir -p $(LLAMA_WHEELS).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PY) -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
	      llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS).tmp && \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); \
	fi
	$(PY) -m pip install -q --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	@rm -f $(VENV)/.llama-*
	@touch $@

# Rebuild llama-cpp-python here from source (after copying a venv or a wheel from another machine).
llama:
	rm -rf $(LLAMA_WHEELS) $(LLAMA_STAMP)
	$(MAKE) $(LLAMA_STAMP)

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
