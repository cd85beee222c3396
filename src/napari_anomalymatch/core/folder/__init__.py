"""A session folder on disk: its write lock (``lock``) and pointing it at data that moved
(``relocation``)."""
