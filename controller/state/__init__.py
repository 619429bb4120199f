"""The lab's SQLite state: one schema, the stores, the swap journal."""
