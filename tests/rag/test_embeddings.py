"""Embeddings: the ONNX export gives sentence-transformers' vectors, is cached by fingerprint, queries are cached."""

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


@pytest.mark.slow
def test_onnx_vectors_match_sentence_transformers(embedder, torch_encoder):
    texts = _texts()
    assert embedder.backend == "onnx"
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


def test_export_fingerprint_covers_model_files_and_exporter(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (model / name).write_text(name)
    first = onnx_export.fingerprint(model)
    assert onnx_export.fingerprint(model) == first
    assert onnx_export.export_path(tmp_path / "models", model).name == f"embedding-{first}.onnx"
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
    assert encoder.path == onnx_export.export_path(models, model_dir)


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


def test_backend_setting_selects_the_encoder():
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(EMBEDDING_MODEL, backend="tensorflow")
    from settings import RagConfig

    config = RagConfig(embed_backend="torch", embed_cache_size=7, embed_threads=2)
    embedder = Embedder.from_config(config)
    assert (embedder.requested_backend, embedder.cache_size, embedder.threads) == ("torch", 7, 2)
    assert embedder.models_dir == config.llm.models_dir

