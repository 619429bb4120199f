"""Image versions: recipes, builds, imports and the local gallery."""
