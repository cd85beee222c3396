"""Scoring: a trained model over a whole collection, its stored scores, tables, and the Dask cluster.

Imports the shared ground, ``core.io`` and ``core.learning``; never sessions, review or evaluation.
"""
