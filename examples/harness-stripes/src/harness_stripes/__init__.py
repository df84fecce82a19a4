"""harness-stripes: an example harness plugin package with one spec of every kind."""
