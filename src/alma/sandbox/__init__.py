"""Running memory designs in isolated worker processes."""
