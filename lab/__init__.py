"""Templates (domain XML, cloud-init) and lab definitions."""
