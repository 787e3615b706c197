# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs torch (CPU build) then the package, runs the offline end-to-end demo
#   make test   same set-up plus test tools, then runs the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medsafety demo $(if $(DATA),--data $(DATA),)

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
	$(PY) -m ruff check src tests bench $(wildcard tools)
	$(PY) -m pytest -q

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) medsafety-runs .pytest_cache
