"""scaleset-lab controller: model, libvirt driver, state, command line."""
