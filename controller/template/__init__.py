"""The ARM template language, pure (no I/O): JSON with comments (`jsonc`), expressions
`[...]` parsed (`parser`) and evaluated (`evaluator`) with one Python function per ARM function
(`functions/`), and whole templates (`template`: the interface; `params`: parameters and
variables; `expand`: resources with copy, condition and dependsOn, levels, outputs). What it
needs of the world comes in an `Environment`."""
