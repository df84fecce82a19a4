"""pytest plugin for plugin authors (filled in below)."""
