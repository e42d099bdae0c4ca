"""The `zabby` command."""
