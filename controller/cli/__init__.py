"""`scaleset`: the command line."""
