"""Use cases: one function per command, provisioning, repair, health, the rolling orchestrator."""
