"""The command line's commands, apart from ``wsstream/__main__.py``'s parser
and entry point: ``common`` (errors, argument types, client options),
``demo``, ``bench``."""
