"""Evaluation: the oracle protocol on a labelled benchmark, its metrics, test sets, reports and demo data.

The top of ``core``: may import every other part, and nothing in ``core`` imports it.
"""
