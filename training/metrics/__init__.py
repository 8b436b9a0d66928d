"""Project-written `evaluate` metric modules, one folder each, loaded by path (never from the Hub).

Each folder holds a script of the same name, the layout ``evaluate.load("/abs/path/to/folder")`` expects;
use ``training.scoring.load_metric(name)`` rather than loading them directly.
"""
