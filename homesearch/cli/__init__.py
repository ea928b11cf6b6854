"""The ``homesearch`` command: ``main`` dispatches to the sub-commands (``search``, ``bench``, ...)."""
