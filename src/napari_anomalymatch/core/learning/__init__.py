"""Learning: the network, its weights, augmentation, the FixMatch step, training, the probe, checkpoints.

Imports only the shared ground of ``core`` (config, errors, labels, transforms, ...) and ``core.io``.
"""
