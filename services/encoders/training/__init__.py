"""Offline training of the image tower's projection head (LiT-style, frozen e5 text tower).

Entry point: ``homesearch train`` -> :func:`services.encoders.training.cli.main`.
"""
