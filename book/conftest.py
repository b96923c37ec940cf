"""pytest: the exercise pages under ``book/exercises/`` are written by the book build from
``exercises/`` (student versions, which raise ``NotImplementedError`` by design); the exercises
themselves are run from ``exercises/``."""

collect_ignore = ["exercises"]
