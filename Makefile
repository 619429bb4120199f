# Two entry points for a fresh Debian 12 machine: `make demo` and `make test`.
.PHONY: setup demo test test-fast bench clean

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	.venv/bin/pytest -v

test-fast: setup
	.venv/bin/pytest -m "not vm"

bench: setup
	.venv/bin/python bench/image_build.py
	.venv/bin/python bench/boot_time.py
