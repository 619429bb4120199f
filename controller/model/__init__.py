"""The ARM documents (scale set, instance, extensions) and their parsing and validation."""
