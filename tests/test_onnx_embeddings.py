"""The ONNX Runtime paths for embeddings against the torch path, on the shipped MiniLM.

They export the model into this test's own model cache (`ASSAY_MODEL_CACHE`), as a first run does.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from assay.core.models import DEFAULT_EMBEDDING_MODEL, EmbeddingModelResource

pytestmark = pytest.mark.integration  # exports and quantises the model (seconds)

# Written for this test, not taken from the sample: mixed lengths, languages, symbols, an empty text.
TEXTS = [
    "Taxi from Heathrow to the office",
    "Rechnung für Druckerpapier und Toner, Lieferung nach München",
    "🚕 airport transfer — 42.50 EUR",
    "",
    "quarterly licence renewal for the accounting software " * 20,
    "x",
    "Dinner with a candidate after the interview; receipts attached.",
    "hotel 3 nights Lisbon conference",
    "ДОГОВОР консалтинговых услуг",
    "SELECT * FROM gold.monthly_summary; -- not an instruction",
]


@pytest.fixture
def model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSAY_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def _vectors(backend: str) -> tuple[str, np.ndarray]:
    resource = EmbeddingModelResource(device="cpu", backend=backend)
    encoder = resource.encoder_for(resource.model_name())
    assert encoder.backend == backend
    return encoder.name, encoder.encode_documents(TEXTS)


def test_onnx_gives_the_torch_vectors_and_int8_stays_close_under_its_own_name(model_cache):
    torch_name, exact = _vectors("torch")
    onnx_name, onnx = _vectors("onnx")
    int8_name, int8 = _vectors("onnx-int8")

    assert torch_name == onnx_name == DEFAULT_EMBEDDING_MODEL  # same vectors: same stored model
    assert int8_name == DEFAULT_EMBEDDING_MODEL + "#onnx-int8"  # other vectors: a model of their own
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    assert (exact * onnx).sum(axis=1).min() > 0.99999
    cosine = (exact * int8).sum(axis=1)
    assert cosine.min() > 0.95 and cosine.mean() > 0.98
    # query order and batch size do not change a vector (the path sorts by length and pads)
    reordered = EmbeddingModelResource(device="cpu", backend="onnx", batch_size=3).encoder()
    np.testing.assert_allclose(reordered.encode_documents(TEXTS[::-1])[::-1], onnx, atol=1e-5)
    # one query goes through the single-thread session: same vector as in a batch
    np.testing.assert_allclose(reordered.encode_queries([TEXTS[0]])[0], onnx[0], atol=1e-5)
    assert sorted(p.name for p in model_cache.glob("onnx/*/*.onnx")) == ["model.onnx", "model_int8.onnx"]


def test_the_stored_name_decides_how_queries_are_encoded(model_cache):
    # a corpus built on the int8 path is searched with int8 queries even where torch is configured,
    # and a corpus of exact vectors with exact queries even where int8 is configured
    torch_resource = EmbeddingModelResource(device="cpu", backend="torch")
    assert torch_resource.encoder_for(DEFAULT_EMBEDDING_MODEL + "#onnx-int8").backend == "onnx-int8"
    int8_resource = EmbeddingModelResource(device="cpu", backend="onnx-int8")
    assert int8_resource.encoder_for(DEFAULT_EMBEDDING_MODEL).backend == "onnx"


def test_models_onnx_cannot_take_stay_on_torch(tmp_path, model_cache):
    from test_embeddings import _static_model

    folder = _static_model(tmp_path / "static", 16, 1)
    resource = EmbeddingModelResource(model=folder, device="cpu", backend="onnx-int8")
    assert resource.model_name() == os.path.realpath(folder)
    assert resource.encoder().backend == "torch"
    with pytest.raises(ValueError, match="auto, torch, onnx or onnx-int8"):
        EmbeddingModelResource(device="cpu", backend="openvino").encoder()


def test_an_int8_query_vector_does_not_depend_on_the_queries_batched_with_it(model_cache):
    # dynamic quantisation scales activations per batch: documents may differ by batch, queries not
    encoder = EmbeddingModelResource(device="cpu", backend="onnx-int8").encoder()
    alone = np.stack([encoder.encode_queries([text])[0] for text in TEXTS])
    np.testing.assert_allclose(encoder.encode_queries(TEXTS), alone, atol=1e-5)


_LOAD_CACHED = """
import json, sys
import numpy as np
from assay.core.models import EmbeddingModelResource
resource = EmbeddingModelResource(device="auto", backend="onnx-int8")
np.save(sys.argv[1], resource.encoder_for(resource.model_name()).encode_documents(json.loads(sys.argv[2])))
print(json.dumps(sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)))
"""


def test_a_cached_export_loads_without_torch_and_tokenizes_as_sentence_transformers(model_cache, tmp_path):
    from sentence_transformers import SentenceTransformer

    from assay.core.models import model_source

    resource = EmbeddingModelResource(device="cpu", backend="onnx-int8")
    encoder = resource.encoder_for(resource.model_name())  # exports, saving the tokenizer beside it
    # the saved tokenizer splits and pads exactly as the one sentence-transformers loads
    reference = SentenceTransformer(model_source(DEFAULT_EMBEDDING_MODEL), device="cpu")
    ours = encoder.model._tokenizer(TEXTS)
    theirs = reference.tokenizer(
        TEXTS, padding=True, truncation=True, max_length=reference.max_seq_length, return_tensors="np"
    )
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(ours[key], theirs[key])
    # a new process loads the cached export without importing torch, transformers or
    # sentence-transformers (7-18 s on 2 cores), and gives the same vectors
    out = tmp_path / "vectors.npy"
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_CACHED, str(out), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == []
    np.testing.assert_allclose(np.load(out), encoder.encode_documents(TEXTS), atol=1e-6)
