"""The contract types: what plugins implement and the pipeline exchanges (specs and their
protocols, options, roles, metrics, categories, data, the attack and training contexts, records
and their per-image outcomes). Everything above builds on them; they build on the utilities
only.
"""
