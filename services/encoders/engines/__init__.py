"""Inference engines for the towers of ``services.encoders.models``: PyTorch is the models themselves
(the reference, and what training uses); ``onnx_export`` turns a tower into an ONNX graph with a
parity check and ``onnx_engine`` runs it on ONNX Runtime (the default)."""
