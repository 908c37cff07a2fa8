# The two set-up commands: `make demo` and `make test`. Each creates or updates .venv itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# CPU build of torch by default; GPU users: make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" ...
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.bigseg-installed
# the torch build asked for last: another TORCH_SPEC (e.g. the CUDA build) reinstalls torch
SPEC   := $(VENV)/.torch-spec

.PHONY: demo test venv bench clean FORCE

venv: $(STAMP)

$(SPEC): FORCE
	@old="$$(cat $@ 2>/dev/null)"; if [ "$$old" != "$(TORCH_SPEC)" ]; then mkdir -p $(VENV); \
	  if [ -n "$$old" ]; then touch $(VENV)/.torch-changed; fi; echo "$(TORCH_SPEC)" > $@; fi

$(STAMP): pyproject.toml Makefile $(SPEC)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	if ! $(PY) -c "import torch" 2>/dev/null; then $(PY) -m pip install -q $(TORCH_SPEC); \
	elif [ -e $(VENV)/.torch-changed ]; then $(PY) -m pip install -q --force-reinstall --no-deps $(TORCH_SPEC) \
	  && $(PY) -m pip install -q $(TORCH_SPEC); fi
	rm -f $(VENV)/.torch-changed
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bigseg demo --out out/demo

# the tests spread over the machine's cores (pytest-xdist); TEST_WORKERS=0 runs them in one process
TEST_WORKERS ?= auto
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

# each benchmark with its defaults (well over an hour); THREADS: the model benchmarks' torch threads, as README runs them
BENCH_THREADS ?= 2
bench: $(STAMP)
	for b in benchmarks/bench_*.py; do THREADS=$(BENCH_THREADS) $(PY) $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
