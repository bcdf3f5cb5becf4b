# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_OUT ?= demo-out
DEMO_ROWS ?= 20000
DIST ?= dist
PYTEST_ARGS ?=
GPU_WHEELS ?= .gpu-wheels
# LAION's real ViT-L/14 head, read in place when the shared reference data is beside the checkout.
DEMO_HEAD ?= $(wildcard ../shared/reference/laion-aesthetic-predictor/sa_0_4_vit_l_14_linear.pth)

.PHONY: venv demo test test-all lint lint-js bench bench-scale bench-gpu gpu-wheels dist clean

venv: $(VENV)/.installed

# pip compiles a wheel's modules when it installs them; an editable install leaves laion_spark (and bench) as sources,
# and where PYTHONDONTWRITEBYTECODE is set (many CI images, this project's machines) every command would compile them
# again: 0.07 s of each (join-tags of 20,000 rows, 8 runs each: median 1.245 -> 1.17 s). Python checks each .pyc
# against its source, so an edited module is compiled afresh as without them.

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m compileall -q laion_spark bench
	touch $@

demo: venv
	$(VENV)/bin/laion-spark demo --out $(DEMO_OUT) --rows $(DEMO_ROWS) $(if $(DEMO_HEAD),--head $(DEMO_HEAD))

# The fast tier: no test marked slow, classic (a JVM), browser, dist (builds the wheel) or gpu; an unmarked test
# over 10 s fails it (tests/tiers.py). test-all: every test (CI).
test: venv
	$(PY) -m pytest --fast $(PYTEST_ARGS)

test-all: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv lint-js
	$(VENV)/bin/ruff check laion_spark jobs tests bench
	$(VENV)/bin/ruff format --check laion_spark jobs tests bench

# The report pages' JavaScript (laion_spark/report/*.js) through ESLint, pinned by package.json and its lockfile
# (needs Node.js 20.19+ and npm; the rules are in eslint.config.mjs).
lint-js: node_modules/.package-lock.json
	npm run --silent lint

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

bench: venv
	$(PY) -m bench.join
	$(PY) -m bench.score
	$(PY) -m bench.kv
	$(PY) -m bench.clip

# How cost grows with rows: every Spark stage at 0.5M-4M rows (15-20 minutes, ~7 GB in bench-out/).
bench-scale: venv
	$(PY) -m bench.scale

# On a machine with a CUDA GPU (no Spark needed): ViT-L/14 images and ViT-B/32 captions in fp16.
bench-gpu: venv
	$(PY) -m bench.clip_gpu

# The folder bench/gpu_check.sh needs on a bare GPU machine (Python 3.12 there): open_clip, ftfy, wcwidth,
# mmh3, timm, the Spark Connect client, pysail (xz) and this package's wheel; checks that it fits in one
# device call beside the working tree (64 MiB). Uses the dev venv (make venv) without changing it.
gpu-wheels:
	@test -x $(PY) || { echo "error: no $(PY): run make venv first" >&2; exit 2; }
	$(PY) -m bench.gpu_wheels $(GPU_WHEELS)

# A wheel for cluster images and a zip of the package for spark-submit --py-files, both carrying conf/
# as laion_spark/conf (the zip holds the wheel's laion_spark/ files). A stale egg-info would add files that
# pyproject.toml's package-data no longer names.
dist: venv
	rm -rf $(DIST) build laion_spark.egg-info && mkdir -p $(DIST)
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w $(DIST) .
	$(PY) -c "import glob, zipfile; w = zipfile.ZipFile(glob.glob('$(DIST)/*.whl')[0]); z = zipfile.ZipFile('$(DIST)/laion_spark.zip', 'w', zipfile.ZIP_DEFLATED); [z.writestr(i, w.read(i)) for i in w.infolist() if i.filename.startswith('laion_spark/')]; z.close()"

clean:
	rm -rf $(DEMO_OUT) dist .pytest_cache
