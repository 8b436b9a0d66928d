"""Retriever fine-tuning: config checks, pairs and held-out split, a short real run, promotion, and the
adapter reaching the vectors (ONNX export and index fingerprints cover it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag import onnx_export
from rag.index import fingerprint
from settings import RagConfig
from tests.conftest import SHIPPED_KB
from training.config import ConfigError, load_config
from training.embed import EmbedArgs, EmbedTrainConfig, main, promote, split_pairs

ROOT = Path(__file__).resolve().parents[2]


def _yaml(tmp_path: Path, **values) -> Path:
    path = tmp_path / "embed.yaml"
    path.write_text("embed:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in values.items()), encoding="utf-8")
    return path


def test_the_shipped_config_is_valid_and_bad_values_get_french_messages(tmp_path):
    config = load_config(EmbedTrainConfig, ROOT / "configs" / "embed" / "default.yaml").embed
    assert config.base_model == "packaged" and config.holdout_per_entry == 1
    with pytest.raises(ConfigError) as refused:
        load_config(EmbedTrainConfig, _yaml(tmp_path, batch_size=1, learning_rate=2, kb_dir="datasets/nulle-part"))
    assert len(refused.value.errors) == 3 and any("négatifs" in e for e in refused.value.errors)
    with pytest.raises(ConfigError, match="clé inconnue"):
        load_config(EmbedTrainConfig, _yaml(tmp_path, epoch=3))
    assert main(["--config", str(_yaml(tmp_path, lora_r=0))]) == 2


def test_held_out_phrasings_never_reach_training():
    config = EmbedArgs(kb_dir=str(SHIPPED_KB), holdout_per_entry=1)
    pairs, held, corpus, owner = split_pairs(config)
    trained = {text for pair in pairs for text in pair}
    assert held and not any(question in trained or question in corpus for question, _ in held)
    assert len(corpus) == len(owner)
    again = split_pairs(config)[1]
    assert again == held  # seeded


@pytest.mark.slow
def test_a_short_run_writes_an_adapter_the_encoders_merge_and_promotion_installs(tmp_path, embedder):
    from rag.embeddings import Embedder, TorchEncoder
    from tests.conftest import EMBEDDING_MODEL

    out = tmp_path / "run"
    config = _yaml(tmp_path, kb_dir=str(SHIPPED_KB), out=str(out), max_steps=2, epochs=1, batch_size=8,
                   learning_rate=0.01)  # fmt: skip
    assert main(["--config", str(config)]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["retrieval_before"]["queries"] == report["retrieval_after"]["queries"] > 20
    assert {"hit@1", "hit@3", "mrr"} <= set(report["retrieval_after"])
    adapter = out / "adapter"

    # The app's encoder merges it before the ONNX export; the torch fallback merges it the same way.
    tuned = Embedder(EMBEDDING_MODEL, adapter=adapter, models_dir=tmp_path / "models", precision="float32")
    texts = ["où je trouve mes anciennes factures ?", "code RIO", "pas de réseau depuis ce matin"]
    vectors = tuned.encode(texts)
    assert tuned.backend == "onnx" and tuned.encoder.path.parent == tmp_path / "models"
    assert float(np.abs(vectors - embedder.encode(texts)).max()) > 1e-3  # not the packaged model's vectors
    assert np.abs(vectors - TorchEncoder(EMBEDDING_MODEL, adapter=adapter).encode(texts, 8)).max() < 1e-4
    # The int8 export served by default is quantized from that merged export.
    served = Embedder(EMBEDDING_MODEL, adapter=adapter, models_dir=tmp_path / "models")
    assert served.encoder.path.name == tuned.encoder.path.name.replace(".onnx", "-int8.onnx")
    assert float((served.encode(texts) * vectors).sum(axis=1).min()) > 0.95

    target = tmp_path / "installed"
    worse = {**report, "retrieval_after": {**report["retrieval_after"], "mrr": -1.0}}
    assert not promote(worse, target) and not target.exists()
    better = {
        **report,
        "retrieval_after": {**report["retrieval_after"], "mrr": report["retrieval_before"]["mrr"] + 0.1},
    }
    assert promote(better, target) and (target / "adapter_config.json").is_file()


def test_the_adapter_changes_the_export_and_index_fingerprints(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_text("weights")
    assert onnx_export.fingerprint(model) != onnx_export.fingerprint(model, adapter)
    with_adapter = fingerprint(RagConfig(kb_dir=SHIPPED_KB, embedding_adapter=adapter))
    assert with_adapter != fingerprint(RagConfig(kb_dir=SHIPPED_KB))
    (adapter / "adapter_model.safetensors").write_text("retrained")
    assert fingerprint(RagConfig(kb_dir=SHIPPED_KB, embedding_adapter=adapter)) != with_adapter
    with pytest.raises(FileNotFoundError, match="LoRA adapter"):
        onnx_export.adapter_digest(model)
