"""Ground-floor utilities the whole core shares: errors, files, seeds, devices, memory, progress
bars, the version. They import nothing else of the harness.
"""
