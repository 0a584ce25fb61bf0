# Two commands set everything up: `make lab` and `make test`. Both work on a fresh Debian 12 machine as
# root, and both can run twice in a row. .ci/run calls `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := 0
SCENARIOS := postgresql_lab pgbouncer redis

.PHONY: help venv collection-link collection lab lab-up lab-down lab-status lab-pin lab-unpin lab-deploy lint unit cli wheel integration fleet drills molecule test bench clean

help:
	@echo "make lab    boot the lab hosts, deploy PostgreSQL, PgBouncer, Redis and the demo app onto them, show the plan"
	@echo "make lab-down  power the lab hosts off and remove their namespaces, veths and mounts"
	@echo "make test   lint, unit, CLI and integration tests against the lab, incident drills, Molecule scenarios"
	@echo "make bench  benchmarks (not part of make test): CLI start-up, doctor over a fleet, pool sizing sweep"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip uninstall -q -y toolkit 2>/dev/null || true  # the distribution's name before it was renamed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The checkout is the collection pgbouncer_django.toolkit (galaxy.yml): ansible.cfg's collections_path finds it
# through this link, so the playbooks and molecule use the roles by their full names, lab-only ones included.
COLLECTION_LINK := .collections/ansible_collections/pgbouncer_django/toolkit
collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK)) && ln -sfn ../../.. $(COLLECTION_LINK)

venv: $(STAMP) collection-link

# The collection tarball (dist/pgbouncer_django-toolkit-VERSION.tar.gz), with plugins/plugin_utils regenerated
# from toolkit/domain first (scripts/generate_plugin_utils.py). The lab-only roles stay out (build_ignore).
collection: venv
	$(BIN)/python scripts/generate_plugin_utils.py
	$(BIN)/ansible-galaxy collection build --force --output-path dist .

# The lab (docs/lab.md): Debian 12 and 13 hosts under systemd (systemd-nspawn) in network namespaces on
# 198.18.0.0/24, reached over SSH as a non-root user with sudo (`ssh -F .lab/fleet/ssh_config NAME`).
# Runs as root; the host images are built once and cached machine-wide (/var/lib/toolkit-lab).
lab-up: venv
	$(BIN)/python lab/fleet.py up

lab-down:
	$(PYTHON) lab/fleet.py down

lab-status:
	$(PYTHON) lab/fleet.py status

# The database host on CPU 0 and every other lab host on CPU 1 (cpusets, lab/fleet_cpus.py), for a
# benchmark; lab-unpin (and lab-up, lab-down) put every host back on every CPU.
lab-pin: venv
	$(BIN)/python -m lab.fleet_cpus pin

lab-unpin: venv
	$(BIN)/python -m lab.fleet_cpus unpin

# Deploy the roles onto the lab's hosts over SSH (inventory/lab): PostgreSQL on db1, the PgBouncer tier,
# Redis and the demo app, under systemd.
# The monitor host (roles/doctor_monitor on app1) installs the toolkit from a wheelhouse built here for
# its Python, Debian 12's 3.11.2 (lab/wheelhouse.py; cached in .lab/wheelhouse): the hosts have no route out.
lab-deploy: lab-up
	$(BIN)/python lab/wheelhouse.py 3.11.2
	ANSIBLE_FORKS=10 $(BIN)/ansible-playbook playbooks/lab.yml

# doctor exits 2 on the lab's one documented finding: PgBouncer 1.18 (Debian 12) and 1.24.1 (Debian 13) lack
# the fix for the SCRAM authentication bypass CVE-2026-107350 (docs/checks.md). Any other finding, or a
# target doctor could not read (each PgBouncer process, each app node's settings over SSH), fails `make lab`.
LAB_CRITICAL_OK := pgbouncer.version_outdated
lab: lab-deploy
	$(BIN)/toolkit plan -i inventory/lab
	$(BIN)/toolkit doctor -i inventory/lab || test $$? -le 2
	{ $(BIN)/toolkit doctor -i inventory/lab --format json || true; } | $(BIN)/python -c 'import json, sys; \
	doc = json.load(sys.stdin); \
	bad = sorted({f["id"] + " " + f["target"] for f in doc["findings"] if f["id"] != sys.argv[1]}); \
	unread = [t["name"] + " " + t["address"] for t in doc["targets"] if not t["ok"]]; \
	sys.exit(f"make lab: unexpected finding(s) {bad}, unread target(s) {unread}" if bad or unread else 0)' \
	$(LAB_CRITICAL_OK)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production --strict

unit: venv
	$(BIN)/pytest -q tests/unit toolkit roles

cli: venv
	$(BIN)/pytest -q tests/cli

# The wheel outside the checkout: built, installed into a fresh virtualenv with its dependencies from the
# index, and run from another directory (no lab needed).
wheel: venv
	$(BIN)/pytest -q -m packaging tests/packaging

# wrk loads the demo app from here (tests/integration/test_bench_pool_sizing.py, the drills, the benches).
WRK := command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

integration: venv
	@$(WRK)
	$(BIN)/pytest -q -m integration --durations=12 tests/integration

# The four incident drills against the demo app under HTTP load; each asserts detection and recovery.
# Lab code (lab/drills/, run as root from the checkout): not part of the installed toolkit.
drills: venv
	$(BIN)/python -m lab.drills all --seconds 5

# Each scenario boots fresh scratch hosts of Debian 12 and 13 (lab/fleet.py up --scratch) and destroys them.
molecule: venv
	for s in $(SCENARIOS); do t0=$$(date +%s); $(BIN)/molecule test -s $$s; \
	  echo "make molecule: scenario $$s passed in $$(( $$(date +%s) - t0 )) s"; done

# Each stage's time is printed as it ends, and all of them together at the end.
TEST_STAGES := lint unit cli wheel lab integration fleet drills molecule
test: venv
	@start=$$(date +%s); times=""; \
	for stage in $(TEST_STAGES); do \
	  t0=$$(date +%s); $(MAKE) --no-print-directory $$stage; \
	  times="$$times $$stage=$$(( $$(date +%s) - t0 ))s"; echo "make test: stage $$stage passed in $$(( $$(date +%s) - t0 )) s"; \
	done; \
	echo "make test: all stages passed in $$(( $$(date +%s) - start )) s:$$times"

# The lab's hosts themselves: identity, network isolation, units, addresses, peers, recovery from a killed
# run, and down/up (tests/fleet).
fleet: venv
	$(BIN)/pytest -q --durations=8 -m fleet tests/fleet

# Measurements, not tests: `make test` never runs them.
bench: venv
	@$(WRK)
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/doctor_fleet.py
	$(BIN)/python bench/pool_sizing.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
