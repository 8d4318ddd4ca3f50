# For a newcomer: `make demo`, `make run-sim` (click through the loop in the browser), `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install demo test lint bench migrate run run-sim worker clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ needed (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  $(PYTHON) -c 'import ensurepip' 2>/dev/null && { echo "$(PYTHON) -m venv $(VENV) failed:"; $(PYTHON) -m venv $(VENV); exit 1; }; \
	  echo "python3 -m venv failed (no ensurepip): installing Debian's python3-venv"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput -v 0

# Its own database file (var/demo.sqlite3), emptied at each run: the same seed gives the same figures.
demo: install
	$(PY) manage.py demo

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) -m bench

# Web, Celery worker and beat in one process on the embedded default (runserver alone has no worker).
run: install
	$(PY) manage.py serve

# The same with a simulated CPO of 300 charge points in 10x time, on its own fresh var/simulated.sqlite3.
run-sim: install
	$(PY) manage.py serve --simulator

worker: install
	$(VENV)/bin/celery -A smatch worker -l info

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis test-artifacts
