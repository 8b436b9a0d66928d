"""Social monitor: Mastodon complaints detected, stored once, answered with a personal chat link.

Modules: ``config`` (settings), ``analysis`` (scores and reasons), ``tokens`` (contact links),
``replies`` (French templates), ``store`` (posts repository), ``service`` (business logic) and
``monitor`` (the streaming thread, also ``python -m social.monitor``). Nothing is imported here,
so ``import social`` stays cheap.
"""
