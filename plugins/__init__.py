"""The built-in plugins of harness, installed as the import package ``harness_plugins``.

Each module is one plugin, declared in the project's ``[project.entry-points.harness]`` table
and loaded exactly as a third-party package's plugin is.
"""
