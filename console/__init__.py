"""The homesearch web console: search the way a shopper sees it, inspect relevance the way a
merchandiser checks it.

A small Starlette app (served by uvicorn) that talks to the public gateway through
:mod:`homesearch.client`, holding the API key server-side, and serves plain HTML/CSS/JS
(``console/static``, no build step). ``python -m console --help`` runs it alone;
``homesearch up`` starts it by default. See ``console/README.md``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
