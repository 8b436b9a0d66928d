"""The float32 ONNX export answers every evaluation question as sentence-transformers on torch does.

(The int8 export served by default differs on a few questions out of ~1,100, in both directions;
`python -m bench.chat` measures the two side by side.)"""

from __future__ import annotations

import pytest

from rag.answer import AnswerEngine
from rag.embeddings import Embedder
from rag.evaluation import load_eval_set
from rag.index import build_index
from tests.conftest import EMBEDDING_MODEL, EVAL_DIR


@pytest.mark.slow
def test_onnx_and_torch_give_the_same_decisions_on_every_eval_set(shipped_config, tmp_path):
    onnx_embedder = Embedder(EMBEDDING_MODEL, precision="float32")
    onnx_config = shipped_config.model_copy(update={"index_dir": tmp_path / "onnx", "embed_precision": "float32"})
    build_index(onnx_config, onnx_embedder)
    engine = AnswerEngine(onnx_config, onnx_embedder)
    torch_embedder = Embedder(EMBEDDING_MODEL, backend="torch")
    torch_config = shipped_config.model_copy(update={"index_dir": tmp_path / "index", "embed_backend": "torch"})
    build_index(torch_config, torch_embedder)  # as before: index and queries embedded by sentence-transformers
    reference = AnswerEngine(torch_config, torch_embedder)
    assert engine.embedder.backend == "onnx" and torch_embedder.backend == "torch"
    sets = sorted(EVAL_DIR.glob("*.jsonl"))
    assert sets
    differences = []
    for path in sets:
        for item in load_eval_set(path):
            got, want = engine.answer(item["question"]), reference.answer(item["question"])
            decision = ("top_entry", "needs_escalation", "out_of_scope", "intent", "escalation_reasons")
            if (
                any(getattr(got, k) != getattr(want, k) for k in decision)
                or abs(got.confidence - want.confidence) > 1e-3
            ):
                differences.append((path.name, item["question"], got.top_entry, want.top_entry))
    assert differences == []
