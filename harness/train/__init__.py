"""Training: the one resumable loop every training defense plugs its epoch into, the minibatch
augmentations, the gradient steps (FGSM, PGD) the loop and the defenses share.
"""
