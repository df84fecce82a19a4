"""From a request to a plan: loading the plugins into the registry, supplied models, and expanding
a bench configuration into training jobs and cells with their cache keys.
"""
