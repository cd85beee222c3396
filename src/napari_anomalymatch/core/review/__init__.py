"""Review: the queue through a session's ranking, framed tiles, galleries and exported tables.

Sits above ``core.session`` (the queue labels through a session); never imports evaluation.
"""
