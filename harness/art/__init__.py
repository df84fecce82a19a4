"""The bridge to IBM's adversarial-robustness-toolbox: torch models as ART classifiers, and ART
evasion attacks declared as plugins.
"""
