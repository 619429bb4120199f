"""The ARM template language, pure (no I/O): JSON with comments (`jsonc`), expressions
`[...]` parsed (`parser`) and evaluated (`evaluator`) with one Python function per ARM function
(`functions/`), and whole templates (`template`: parameters, variables, resources with copy,
condition and dependsOn, outputs). What it needs of the world comes in an `Environment`."""
