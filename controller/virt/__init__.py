"""libvirt and the guest: hypervisor, domain XML, seeds, SSH, port forwards, acceleration."""
