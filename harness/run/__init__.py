"""Executing a plan: the runner (the one writer of the store), the work units, the model provider
and caches, the executors (serial, local processes, Ray) and one evaluator per attack category.
"""
