"""Index builds on the mini KB: manifest, idempotence, fingerprint, cleanup, atomicity, stores."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.index import KnowledgeIndex, build_index, current_build, fingerprint
from rag.retriever import HybridRetriever
from rag.sources import SourceError
from rag.vectorstore import STORES
from settings import RagConfig


def test_build_writes_manifest_and_current(mini_config: RagConfig, embedder) -> None:
    report = build_index(mini_config, embedder)
    assert report.rebuilt is True
    assert report.build.startswith(fingerprint(mini_config) + "-")
    assert report.entries == 5  # 2 FAQ + 2 Markdown sections + 1 CSV row
    assert report.views == 2 * 2 + 2 * 1 + 1 + report.entries  # question phrasings + one answer chunk each
    index_dir = mini_config.index_dir
    assert (index_dir / "CURRENT").read_text().strip() == report.build
    assert current_build(index_dir) == report.path == index_dir / "builds" / report.build
    manifest = json.loads((report.path / "manifest.json").read_text())
    assert manifest["build"] == report.build
    assert manifest["fingerprint"] == fingerprint(mini_config)
    assert manifest["entries"] == 5 and manifest["views"] == report.views
    assert manifest["dimension"] == embedder.dimension
    assert manifest["vector_store"] == "faiss"
    for name in ("entries.json", "views.json", "dense.faiss", "bm25"):
        assert (report.path / name).exists()
    assert report.to_dict()["path"] == str(report.path)

    index = KnowledgeIndex.load(index_dir)
    assert {e.id for e in index.entries} == {
        "m-1",
        "m-2",
        "conv-conv-1",
        "proc-proc#delais",
        "proc-proc#urgence",
    }
    assert index.store.size == report.views
    assert len(index.view_entry) == report.views


def test_second_build_is_a_no_op_and_rebuild_forces_it(mini_config: RagConfig, embedder) -> None:
    first = build_index(mini_config, embedder)
    mtime = (first.path / "manifest.json").stat().st_mtime_ns
    steps: list[tuple[float, str]] = []
    second = build_index(mini_config, embedder, progress=lambda f, d: steps.append((f, d)))
    assert second.rebuilt is False
    assert (second.build, second.entries, second.views, second.path) == (
        first.build,
        first.entries,
        first.views,
        first.path,
    )
    assert (first.path / "manifest.json").stat().st_mtime_ns == mtime
    assert steps[-1] == (1.0, "Index déjà à jour")

    forced = build_index(mini_config, embedder, rebuild=True)
    # a forced rebuild goes to a new folder, so the build in service is never touched meanwhile
    assert forced.rebuilt is True and forced.build != first.build
    assert forced.build.startswith(fingerprint(mini_config))
    assert current_build(mini_config.index_dir) == forced.path
    assert [p.name for p in (mini_config.index_dir / "builds").iterdir()] == [forced.build]


def test_editing_the_kb_changes_fingerprint_rebuilds_and_removes_old_builds(mini_config: RagConfig, embedder) -> None:
    first = build_index(mini_config, embedder)
    csv = mini_config.kb_dir / "conv.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "2,forfait,Et à l'étranger ?,25 Go en Europe.\n", encoding="utf-8")
    assert fingerprint(mini_config) != first.build

    second = build_index(mini_config, embedder)
    assert second.rebuilt is True and second.build != first.build
    assert second.entries == first.entries + 1
    assert not first.path.exists()
    assert [p.name for p in (mini_config.index_dir / "builds").iterdir()] == [second.build]
    assert "conv-conv-2" in {e.id for e in KnowledgeIndex.load(mini_config.index_dir).entries}


def test_fingerprint_covers_settings_and_file_names(mini_config: RagConfig) -> None:
    base = fingerprint(mini_config)
    assert fingerprint(mini_config) == base  # deterministic
    assert fingerprint(mini_config.model_copy(update={"vector_store": "numpy"})) != base
    assert fingerprint(mini_config.model_copy(update={"chunk_size": 500})) != base
    # int8 and float32 vectors differ (cosine ~0.99): switching rebuilds; torch's vectors are float32 ones
    assert fingerprint(mini_config.model_copy(update={"embed_precision": "float32"})) != base
    torch = mini_config.model_copy(update={"embed_backend": "torch"})
    assert fingerprint(torch) == fingerprint(torch.model_copy(update={"embed_precision": "float32"}))
    (mini_config.kb_dir / "proc.md").rename(mini_config.kb_dir / "proc2.md")
    assert fingerprint(mini_config) != base
    (mini_config.kb_dir / "notes.txt").write_text("unsupported files are ignored", encoding="utf-8")
    renamed = fingerprint(mini_config)
    assert fingerprint(mini_config) == renamed


def test_failed_build_keeps_previous_index_in_service(mini_config: RagConfig, embedder) -> None:
    good = build_index(mini_config, embedder)
    (mini_config.kb_dir / "faq" / "broken.json").write_text('[{"question": "x"', encoding="utf-8")
    with pytest.raises(SourceError, match=r"broken\.json"):
        build_index(mini_config, embedder)
    assert current_build(mini_config.index_dir) == good.path
    index = KnowledgeIndex.load(mini_config.index_dir)
    assert len(index.entries) == good.entries
    assert [p.name for p in (mini_config.index_dir / "builds").iterdir()] == [good.build]  # no half-written build


def test_failure_while_writing_leaves_no_temp_build(mini_config: RagConfig, embedder, monkeypatch) -> None:
    good = build_index(mini_config, embedder)
    (mini_config.kb_dir / "extra.csv").write_text("question,answer\nQ ?,R.\n", encoding="utf-8")

    class FailingStore(STORES["faiss"]):
        def save(self, directory: Path) -> None:
            raise OSError("disk full")

    monkeypatch.setitem(STORES, "faiss", FailingStore)  # a real failure of the real writer, not a mock of it
    with pytest.raises(OSError, match="disk full"):
        build_index(mini_config, embedder)
    assert current_build(mini_config.index_dir) == good.path
    assert [p.name for p in (mini_config.index_dir / "builds").iterdir()] == [good.build]


def test_empty_kb_is_an_error(tmp_path: Path, embedder) -> None:
    (tmp_path / "kb").mkdir()
    config = RagConfig(kb_dir=tmp_path / "kb", index_dir=tmp_path / "index")
    with pytest.raises(ValueError, match="No knowledge-base entry"):
        build_index(config, embedder)
    assert current_build(config.index_dir) is None


def test_load_without_build_explains_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m rag ingest"):
        KnowledgeIndex.load(tmp_path)


def test_faiss_and_numpy_stores_agree(mini_config: RagConfig, tmp_path: Path, embedder) -> None:
    numpy_config = mini_config.model_copy(update={"vector_store": "numpy", "index_dir": tmp_path / "index-numpy"})
    faiss_report = build_index(mini_config, embedder)
    numpy_report = build_index(numpy_config, embedder)
    assert (numpy_report.path / "dense.npy").exists() and not (numpy_report.path / "dense.faiss").exists()

    faiss_index = KnowledgeIndex.load(mini_config.index_dir)
    numpy_index = KnowledgeIndex.load(numpy_config.index_dir)
    assert type(numpy_index.store).__name__ == "NumpyVectorStore"
    vector = embedder.encode(["Je ne capte plus rien"])[0]
    f_scores, f_ids = faiss_index.store.search(vector, 4)
    n_scores, n_ids = numpy_index.store.search(vector, 4)
    assert list(f_ids) == list(n_ids)
    np.testing.assert_allclose(f_scores, n_scores, rtol=1e-4, atol=1e-5)
    assert faiss_report.views == numpy_report.views

    for question, expected in [
        ("Je ne capte plus rien", "m-2"),
        ("où est ma facture", "m-1"),
        ("combien de gigas", "conv-conv-1"),
    ]:
        tops = [
            HybridRetriever(index, embedder, config).search(question).top.entry.id
            for index, config in ((faiss_index, mini_config), (numpy_index, numpy_config))
        ]
        assert tops == [expected, expected], question


def test_numpy_store_round_trip(tmp_path: Path) -> None:
    store = STORES["numpy"](3)
    store.add(np.eye(3, dtype=np.float32))
    store.save(tmp_path)
    loaded = STORES["numpy"].load(tmp_path)
    scores, ids = loaded.search(np.array([0.1, 0.9, 0.0]), 5)  # k larger than the store is capped
    assert list(ids) == [1, 0, 2] and loaded.size == 3
    np.testing.assert_allclose(scores, [0.9, 0.1, 0.0], atol=1e-6)


def test_scope_examples_are_kept_with_the_build_and_embedded_once(mini_config: RagConfig, embedder, tmp_path: Path,
                                                                    monkeypatch) -> None:
    examples = tmp_path / "scope"
    examples.mkdir()
    rows = [("Quelle est la recette de la pâte à crêpes ?", "oos"), ("Comment réserver un train pour Lyon ?", "oos"),
            ("Comment télécharger ma facture ?", "question"), ("je veux un conseiller", "human")]
    (examples / "messages.jsonl").write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    config = mini_config.model_copy(update={"scope_examples": examples, "answered_questions": None})
    assert fingerprint(config) != fingerprint(config.model_copy(update={"scope_examples": None}))

    encoded: list[int] = []
    encode = embedder.encode
    monkeypatch.setattr(embedder, "encode", lambda texts, **kw: encoded.append(len(texts)) or encode(texts, **kw))
    first = build_index(config, embedder)
    with np.load(first.path / "scope.npz") as scope:
        assert scope["out_of_scope"].shape == (2, embedder.dimension) and scope["in_scope"].shape == (2, embedder.dimension)
    build_index(config, embedder, rebuild=True)
    assert encoded.count(len(rows)) <= 1  # the examples' vectors are cached beside the model, not re-encoded per build

    index = KnowledgeIndex.load(config.index_dir)
    crepes = embedder.encode_query("Une recette de crêpes sans oeufs ?")
    assert index.scope_margin(crepes, best_dense=0.0) > 0
    assert index.scope_margin(embedder.encode_query("Où télécharger ma facture ?"), best_dense=0.0) < 0
    assert KnowledgeIndex.load(build_index(mini_config.model_copy(update={"scope_examples": None,
                                                                         "index_dir": tmp_path / "plain"}),
                                           embedder).path.parent.parent).scope_vectors is None


def test_answered_questions_become_phrasings_of_their_entries(mini_config: RagConfig, embedder, tmp_path: Path,
                                                              monkeypatch) -> None:
    answered = tmp_path / "answered.jsonl"
    own = f"ma douloureuse du mois elle est passée où, ref {uuid.uuid4().hex[:8]}"  # never cached by an earlier run
    rows = [{"question": own, "entry": "m-1"},
            {"question": "Facture PDF", "entry": "m-1"},  # one of m-1's own phrasings: not repeated
            {"question": "plus une seule barre sur mon portable", "entry": "m-2"},
            {"question": "le réseau a disparu", "entry": "gone-7"},  # an entry the KB no longer has
            {"question": "Une bonne recette de crêpes ?", "out_of_scope": True}]
    answered.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    config = mini_config.model_copy(update={"answered_questions": answered, "scope_examples": None})
    assert fingerprint(config) != fingerprint(config.model_copy(update={"answered_questions": None}))

    report = build_index(config, embedder)
    with np.load(report.path / "scope.npz") as scope:  # the out-of-scope question joins the off-topic side
        assert scope["out_of_scope"].shape == (1, embedder.dimension) and scope["in_scope"].shape[0] == 0
    index = KnowledgeIndex.load(config.index_dir)
    customer = [(index.entries[v["entry"]].id, v["text"]) for v in index.views if v["kind"] == "c"]
    assert customer == [("m-1", own), ("m-2", "plus une seule barre sur mon portable")]
    assert index.store.size == len(index.views)
    # Its vector sits at its view's place: the customer's own words find their entry at cosine 1.
    hit = HybridRetriever(index, embedder, config).search(own).top
    assert hit.entry.id == "m-1" and hit.dense == pytest.approx(1.0, abs=1e-3)

    # Their vectors are cached for the whole file: a KB that lost m-2 (a publish) re-encodes none of them.
    encoded: list[str] = []
    encode = embedder.encode
    monkeypatch.setattr(embedder, "encode", lambda texts, **kw: encoded.extend(texts) or encode(texts, **kw))
    faq = mini_config.kb_dir / "faq" / "mini.json"
    faq.write_text(json.dumps([e for e in json.loads(faq.read_text(encoding="utf-8")) if e["id"] != "m-2"]), encoding="utf-8")
    build_index(config, embedder)
    assert encoded and own not in encoded
    index = KnowledgeIndex.load(config.index_dir)
    assert [(index.entries[v["entry"]].id, v["text"]) for v in index.views if v["kind"] == "c"] == [("m-1", own)]
    monkeypatch.undo()

    answered.write_text(json.dumps({"question": "", "entry": "m-1"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"answered\.jsonl:1"):
        build_index(config, embedder)
