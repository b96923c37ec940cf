"""pytest: ``exercises/*/tests.py`` are graded-test definitions, not test or doctest modules."""

collect_ignore_glob = ["*/tests.py"]
