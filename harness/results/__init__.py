"""What a run leaves behind: the results store (SQLite) and the metadata of each run.
"""
