"""The ONNX engine's throughput path: length-sorted chunks on parallel threads give the same
vectors, row for row, as one padded run, and the chunking keeps padding and rows bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from services.encoders.engines.onnx_export import MIN_COSINE, row_cosines
from services.encoders.engines.parallel_runs import ParallelRuns, even_chunks, length_chunks, trim_padding
from services.encoders.models.preprocess import ImagePreprocessor


def test_length_chunks_cover_every_row_once_within_budget():
    lengths = [5, 120, 47, 47, 3, 80, 12, 60, 9, 33] * 7
    chunks = length_chunks(lengths, workers=2, token_budget=512, max_rows=16)
    flat = [i for c in chunks for i in c]
    assert sorted(flat) == list(range(len(lengths)))
    for c in chunks:
        assert len(c) <= 16
        assert len(c) == 1 or len(c) * max(lengths[i] for i in c) <= 512
        assert [lengths[i] for i in c] == sorted((lengths[i] for i in c), reverse=True)
    padded = sum(len(c) * max(lengths[i] for i in c) for c in chunks)
    one_run = len(lengths) * max(lengths)
    assert padded < 0.7 * one_run


def test_length_chunks_split_a_small_batch_over_the_workers():
    assert len(length_chunks([10, 10, 10, 10], workers=2)) == 2
    assert length_chunks([10, 10, 10, 10], workers=1) == [[0, 1, 2, 3]]
    assert length_chunks([], workers=2) == []
    assert length_chunks([700], workers=2) == [[0]]  # one row over the budget still runs


def test_even_chunks_and_ordered_map():
    assert even_chunks(5, 2) == [[0, 1, 2], [3, 4]]
    assert even_chunks(1, 4) == [[0]]
    runs = ParallelRuns(3)
    assert runs.map(lambda rows: sum(rows), even_chunks(10, 3)) == [6, 15, 24]


def test_trim_padding_cuts_columns_beyond_the_longest_selected_row():
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]])
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
    got = trim_padding(feeds, [1, 2])
    assert got["input_ids"].tolist() == [[4, 5], [6, 0]]
    assert got["attention_mask"].tolist() == [[1, 1], [1, 0]]


@pytest.fixture(scope="module")
def spec():
    from services.encoders.serving.config import TritonSettings

    return TritonSettings().model_spec()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_text_throughput_path_matches_one_padded_run(spec, precision):
    """fp32: the length-sorted chunks equal one padded run of the whole batch. int8 quantizes
    activations per run, so there the reference is each text run alone (what it serves)."""
    from dataclasses import replace

    from services.encoders.engines.onnx_engine import OnnxTextEncoder

    enc = OnnxTextEncoder(replace(spec, text_precision=precision), intra_threads=1, workers=2)
    texts = [("white oak bookcase with four shelves and doors " * (1 + i % 6)) + f"#{i}" for i in range(21)]
    if precision == "fp32":
        feeds = enc._tokenize(texts, "passage")
        want = enc.session.run(["EMBEDDING"], {n: feeds[n] for n in enc.inputs})[0]
    else:
        alone = [enc._tokenize([t], "passage") for t in texts]
        want = np.concatenate([enc.session.run(["EMBEDDING"], {n: f[n] for n in enc.inputs})[0] for f in alone])
    got = enc.encode(texts, "passage").numpy()
    assert got.shape == want.shape
    assert row_cosines(got, want).min() >= 0.99999


def test_image_throughput_path_matches_the_latency_session(spec, photos):
    from services.encoders.engines.onnx_engine import OnnxImageEncoder

    enc = OnnxImageEncoder(spec, intra_threads=2, workers=2)
    assert enc.bulk is not enc.session
    pixels, ok, _ = ImagePreprocessor(enc.pixel_spec, torch.device("cpu"))(list(photos.values()) * 3)
    want = enc.session.run(["EMBEDDING"], enc._feeds(pixels.float()))[0]
    got = enc.encode_pixels(pixels).numpy()
    assert got.shape == want.shape == (len(ok), enc.dim)
    assert row_cosines(got, want).min() >= MIN_COSINE
    if enc.visual_version:  # ingestion's EMBEDDING + VISUAL take the same chunked path
        want_emb, want_vis = enc.session.run(["EMBEDDING", "VISUAL"], enc._feeds(pixels.float()))
        emb, vis = enc.encode_with_visual(pixels)
        assert row_cosines(emb.numpy(), want_emb).min() >= MIN_COSINE
        assert row_cosines(vis.numpy().reshape(len(vis), -1), want_vis.reshape(len(want_vis), -1)).min() >= MIN_COSINE
