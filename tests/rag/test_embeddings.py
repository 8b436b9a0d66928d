"""Embeddings: the float32 ONNX export gives sentence-transformers' vectors, the int8 one stays close to them,
both are cached by fingerprint, queries are cached."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag import onnx_export
from rag.embeddings import Embedder, OnnxEncoder, TorchEncoder, resolve_model_path
from rag.index import make_views
from rag.sources import load_kb
from tests.conftest import EMBEDDING_MODEL, EVAL_DIR, SHIPPED_KB


def _texts() -> list[str]:
    """Every KB passage and every evaluation question (the texts the app embeds)."""
    from settings import RagConfig

    views = [v["text"] for v in make_views(load_kb(SHIPPED_KB), RagConfig(kb_dir=SHIPPED_KB))]
    questions = [
        json.loads(line)["question"]
        for path in sorted(EVAL_DIR.glob("*.jsonl"))
        for line in path.open()
        if line.strip()
    ]
    return views + questions


@pytest.fixture(scope="module")
def torch_encoder() -> TorchEncoder:
    return TorchEncoder(EMBEDDING_MODEL)


@pytest.fixture(scope="module")
def float32_embedder() -> Embedder:
    return Embedder(EMBEDDING_MODEL, precision="float32")


@pytest.mark.slow
def test_onnx_vectors_match_sentence_transformers(float32_embedder, torch_encoder):
    texts = _texts()
    embedder = float32_embedder
    assert embedder.backend == "onnx" and not embedder.encoder.path.stem.endswith("-int8")
    onnx = embedder.encoder
    # Same token ids as the transformers tokenizer sentence-transformers uses (256 tokens at most).
    reference = torch_encoder.model.tokenizer
    for text in [*texts, "  espaces autour  ", "x" * 3000]:
        expected = reference(text.strip(), truncation=True, max_length=256)["input_ids"]
        assert onnx.tokenizer.encode(text.strip()).ids == expected
    batch = embedder.encode(texts)
    expected = torch_encoder.encode(texts, batch_size=16)
    assert batch.shape == expected.shape and batch.dtype == np.float32
    assert np.abs(batch - expected).max() < 1e-5
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.vstack([onnx.encode([t], 1) for t in texts[-40:]])  # one query at a time, unpadded: every core
    assert np.abs(single - expected[-40:]).max() < 1e-5
    with ThreadPoolExecutor(max_workers=4) as pool:  # overlapping queries: one core each
        overlapped = np.vstack(list(pool.map(lambda t: onnx.encode([t], 1), texts[-40:])))
    assert np.abs(overlapped - expected[-40:]).max() < 1e-5


@pytest.mark.slow
def test_int8_export_is_quantized_from_the_float32_one_and_stays_close(embedder, float32_embedder):
    assert embedder.precision == "int8"  # the serving default
    int8, float32 = embedder.encoder, float32_embedder.encoder
    assert int8.path.name == float32.path.name.replace(".onnx", "-int8.onnx")
    assert int8.path.stat().st_size < float32.path.stat().st_size * 0.7  # int8 weight matrices
    meta = json.loads(int8.path.with_suffix(".json").read_text())
    assert meta["precision"] == "int8" and meta["source"] == float32.path.name
    assert meta["min_cosine"] >= onnx_export.INT8_MIN_COSINE
    texts = _texts()
    a, b = embedder.encode(texts), float32_embedder.encode(texts)
    cosine = (a * b).sum(axis=1)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert cosine.min() > 0.95 and cosine.mean() > 0.985
    # What retrieval sees: a question's nearest KB passage with float32 is among its nearest ones with int8
    # (passages of one entry are near ties, so the very first one may swap).
    views = len(texts) - sum(1 for p in EVAL_DIR.glob("*.jsonl") for line in p.open() if line.strip())
    nearest = (b[views:] @ b[:views].T).argmax(axis=1)
    top3 = np.argsort(-(a[views:] @ a[:views].T), axis=1)[:, :3]
    kept = (top3 == nearest[:, None]).any(axis=1)
    assert kept.mean() > 0.97, kept.mean()


def test_export_fingerprint_covers_model_files_and_exporter(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (model / name).write_text(name)
    first = onnx_export.fingerprint(model)
    assert onnx_export.fingerprint(model) == first
    assert onnx_export.export_path(tmp_path / "models", model).name == f"embedding-{first}.onnx"
    assert onnx_export.export_path(tmp_path / "models", model, precision="int8").name == f"embedding-{first}-int8.onnx"
    with pytest.raises(ValueError, match="unknown embedding precision"):
        onnx_export.export_path(tmp_path / "models", model, precision="int4")
    (model / "model.safetensors").write_text("other weights")
    second = onnx_export.fingerprint(model)
    assert second != first
    monkeypatch.setattr(onnx_export, "EXPORTER_VERSION", "next")
    assert onnx_export.fingerprint(model) not in (first, second)


def test_export_is_made_once_then_reused(tmp_path, embedder):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(embedder.encoder.path, models / embedder.encoder.path.name)
    encoder = OnnxEncoder(EMBEDDING_MODEL, models)  # the cached file: no export
    assert encoder.path.parent == models
    assert sorted(p.name for p in models.iterdir() if p.name.startswith(".")) == []  # no temp leftovers
    model_dir = Path(resolve_model_path(EMBEDDING_MODEL))
    assert encoder.path == onnx_export.export_path(models, model_dir, precision="int8")


def test_a_failed_int8_export_falls_back_to_the_float32_one_not_to_torch(tmp_path, float32_embedder, monkeypatch):
    from rag import embeddings

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(float32_embedder.encoder.path, models / float32_embedder.encoder.path.name)

    def refuse(model_dir, out, adapter=None, precision="float32", timeout=900):
        raise RuntimeError("int8 vectors too far from float32 ones")  # what a saturating CPU would give

    monkeypatch.setattr(embeddings, "_export_in_subprocess", refuse)
    encoder = Embedder(EMBEDDING_MODEL, models_dir=models).encoder
    assert isinstance(encoder, OnnxEncoder) and encoder.precision == "float32"
    assert encoder.path.parent == models


def test_query_vectors_are_cached_read_only_and_bounded(embedder):
    small = Embedder(EMBEDDING_MODEL, cache_size=2)
    small._encoder = embedder.encoder  # share the loaded model
    first = small.encode_query("Comment payer ma facture ?")
    assert small.encode_query("Comment payer ma facture ?") is first
    assert not first.flags.writeable
    assert np.allclose(first, embedder.encode(["Comment payer ma facture ?"])[0], atol=1e-6)
    small.encode_query("b")
    small.encode_query("c")  # evicts the oldest
    assert small.encode_query("Comment payer ma facture ?") is not first
    small.clear_cache()
    assert len(small._cache) == 0


def test_int8_vectors_do_not_depend_on_the_texts_encoded_with_them(embedder):
    """The int8 model quantizes activations per run: a text must get one vector alone or among others
    (padding and neighbours used to move a short question to cosine 0.984 of its own vector)."""
    assert embedder.encoder.precision == "int8"
    texts = ["Comment payer ma facture ?", "Je n'ai plus de réseau depuis ce matin, j'ai redémarré deux fois",
             "rio", "Quel est le prix du Forfait Free 5G pour un abonné Freebox ?"]  # fmt: skip
    together = embedder.encode(texts)
    for text, vector in zip(texts, together, strict=True):
        assert np.array_equal(vector, embedder.encoder.encode([text], 16)[0])
    assert np.array_equal(together[1], embedder.encode(texts[1:3])[0])


def test_backend_setting_selects_the_encoder():
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(EMBEDDING_MODEL, backend="tensorflow")
    with pytest.raises(ValueError, match="unknown embedding precision"):
        Embedder(EMBEDDING_MODEL, precision="int4")
    from settings import RagConfig

    config = RagConfig(embed_backend="torch", embed_cache_size=7, embed_threads=2, embed_precision="float32")
    embedder = Embedder.from_config(config)
    assert (embedder.requested_backend, embedder.cache_size, embedder.threads) == ("torch", 7, 2)
    assert embedder.precision == "float32" and Embedder.from_config(RagConfig()).precision == "int8"
    assert embedder.models_dir == config.llm.models_dir

