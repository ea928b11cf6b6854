"""Text and image encoders served by Triton (``services.encoders``).

Public entry points: ``client.EncoderClient`` (used by the ranking service),
``launcher.TritonServer`` / ``launcher.main`` (``homesearch triton``) and
``prepare.prepare_models`` (``homesearch prepare-models``). See README.md beside this file.
Importing the package is cheap; heavy dependencies load in the submodules that need them.
"""
