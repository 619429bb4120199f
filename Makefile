# Two entry points for a fresh Debian 12 machine: `make demo` and `make test`.
# Image builds (mmdebstrap, chroot) need root: sudo is used when you are not root.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo -E)

.PHONY: setup demo test test-fast test-env env-tests bench box wheelhouse vagrant-ci

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

# Every tier, in two lanes at once (VM and az tiers beside the fast and Vagrant tiers, then test_vm_rehearse and test_vm_surge).
test: setup
	$(SUDO) scripts/run-tests.sh

test-fast: setup
	.venv/bin/pytest -m "not vm and not azcli and not vagrant"

# The fast tests that depend on what the machine has (qemu-img, genisoimage, libvirt, SQLite, TLS,
# the Azure SDK, the installed wheels): what the Vagrant lab host runs to prove its provisioning.
ENV_TESTS := tests/test_accel.py tests/test_disks.py tests/test_domain_xml.py tests/test_recipe.py \
	tests/test_seed_and_cloudinit.py tests/test_guest_readiness.py tests/test_ports.py tests/test_store.py \
	tests/test_schema.py tests/test_files_safety.py tests/test_gallery.py tests/test_cli.py \
	tests/test_api_tls_tokens.py tests/test_api_sdk.py
test-env: setup
	.venv/bin/pytest -m "not vm and not azcli and not vagrant" $(ENV_TESTS)

env-tests:
	@echo $(ENV_TESTS)

# The Vagrant lab host: an offline box from the lab's own image pipeline, the Python
# dependencies as wheels for offline provisioning, and the CI run (up, tests, results, destroy).
box: setup
	$(SUDO) scripts/make-box.sh

wheelhouse: setup
	.venv/bin/pip wheel -q -w .cache/wheelhouse '.[test]' 'setuptools>=68' wheel

vagrant-ci: wheelhouse
	scripts/vagrant-ci.sh

bench: setup
	$(SUDO) .venv/bin/python bench/image_build.py
	$(SUDO) .venv/bin/python bench/boot_time.py
	$(SUDO) .venv/bin/python bench/reimage_time.py
	$(SUDO) .venv/bin/python bench/upgrade_overhead.py
	$(SUDO) .venv/bin/python bench/surge_vs_inplace.py
	$(SUDO) .venv/bin/python bench/replication.py
	.venv/bin/python bench/upgrade_scale.py
	.venv/bin/python bench/api_load.py
	.venv/bin/python bench/web_render.py
