"""From records to what people read: the checks, the leaderboard page, the terminal summary, the
headline rows, the claims, the listings and the figures.
"""
