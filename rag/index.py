"""Build and load the hybrid index (FAISS dense vectors + BM25) of the knowledge base.

A build is written into `builds/<fingerprint>-<time>-<id>/` under a temporary name, renamed into place, then
the `CURRENT` pointer is swapped atomically with `os.replace`: readers never see a half-written
index and a crash mid-build leaves the previous index in service. The fingerprint covers the
KB files, the analyzer, the embedding settings, the labelled scope examples (their vectors are kept
in `scope.npz` for the out-of-scope decision) and the answered customer questions (extra phrasings of
their entries), so re-ingesting unchanged input is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.embeddings import ENCODING_VERSION, Embedder
from rag.intent import OUT_OF_SCOPE, labelled_messages
from rag.onnx_export import adapter_digest
from rag.sources import Entry, load_kb, split_text
from rag.text import ANALYZER_VERSION, QueryCorrector, analyze
from rag.vectorstore import STORES, VectorStore
from settings import RagConfig

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
SCOPE_FILE = "scope.npz"


@dataclass
class BuildReport:
    """What an ingest did."""

    build: str
    rebuilt: bool
    entries: int
    views: int
    seconds: float
    path: Path

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {**self.__dict__, "path": str(self.path)}


def vector_precision(config: RagConfig) -> str:
    """Weights the vectors come from: the ONNX model's precision, float32 on torch (part of every fingerprint)."""
    return config.embed_precision if config.embed_backend == "onnx" else "float32"


def fingerprint(config: RagConfig, entries: list[Entry] | None = None,
                examples: list[tuple[str, str]] | None = None,
                answered: list[tuple[str, str | None]] | None = None) -> str:
    """Hash of everything that changes the index: the KB's entries, analyzer and embedding settings, the
    labelled scope examples and the answered questions.

    It hashes the loaded entries (read from `config.kb_dir` unless given), examples (read from
    `config.scope_examples` unless given) and answered questions (`config.answered_questions`), so the
    same KB gives the same fingerprint whether it comes from the files or from the database (rag/kb.py).
    """
    h = hashlib.sha256()
    settings = [ANALYZER_VERSION, ENCODING_VERSION, config.embedding_model, adapter_digest(config.embedding_adapter),
                config.vector_store, config.chunk_size, config.chunk_overlap, vector_precision(config)]  # fmt: skip
    h.update(json.dumps(settings).encode())
    for entry in load_kb(config.kb_dir) if entries is None else entries:
        h.update(json.dumps(entry.to_dict(), ensure_ascii=False, sort_keys=True).encode())
    for text, label in scope_examples(config) if examples is None else examples:
        h.update(f"{label}\t{text}\n".encode())
    for question, entry_id in answered_questions(config) if answered is None else answered:
        h.update(f"answered\t{entry_id or OUT_OF_SCOPE}\t{question}\n".encode())
    return h.hexdigest()[:16]


def scope_examples(config: RagConfig) -> list[tuple[str, str]]:
    """The labelled messages whose vectors the index keeps for the scope decision ([] when none are configured)."""
    folder = config.scope_examples
    return labelled_messages(folder) if folder is not None and Path(folder).is_dir() else []


def answered_questions(config: RagConfig) -> list[tuple[str, str | None]]:
    """(question, entry id) pairs of `config.answered_questions` in file order, the entry None for a question
    known to be out of scope ([] when no file is configured)."""
    path = config.answered_questions
    if path is None or not Path(path).is_file():
        return []
    pairs: list[tuple[str, str | None]] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        question, entry_id = str(row.get("question", "")).strip(), str(row.get("entry") or "").strip()
        if not question or bool(entry_id) == (row.get("out_of_scope") is True):
            raise ValueError(f"{Path(path).name}:{number}: a non-empty question with either an entry id or "
                             '"out_of_scope": true is required')
        pairs.append((question, entry_id or None))
    return pairs


def make_views(entries: list[Entry], config: RagConfig, answered: Sequence[tuple[str, str | None]] = ()) -> list[dict]:
    """Texts that get a vector: each phrasing of a question, and the answer in overlapping chunks, then the
    answered customer questions ("c") of the entries still in the KB that do not repeat one of its phrasings."""
    views = []
    for idx, entry in enumerate(entries):
        for question in entry.questions:
            views.append({"entry": idx, "kind": "q", "text": question})
        for chunk in split_text(entry.answer, config.chunk_size, config.chunk_overlap):
            views.append({"entry": idx, "kind": "a", "text": f"{entry.title}. {chunk}"})
    position = {entry.id: idx for idx, entry in enumerate(entries)}
    own = {(v["entry"], v["text"].casefold()) for v in views if v["kind"] == "q"}
    for question, entry_id in answered:
        idx = position.get(entry_id)
        if idx is not None and (idx, question.casefold()) not in own:
            own.add((idx, question.casefold()))
            views.append({"entry": idx, "kind": "c", "text": question})
    return views


def lexical_document(entry: Entry) -> list[str]:
    """BM25 tokens of an entry: title, all phrasings, tags and answer."""
    return analyze(" ".join([entry.title, *entry.questions, *entry.tags, entry.answer]))


def _cached_vectors(texts: list[str], embedder: Embedder, config: RagConfig, name: str) -> np.ndarray:
    """Vectors of texts that change with their own file or the model, not with the KB (the labelled scope
    examples, the answered questions), cached beside the exported model so every rebuild of every index
    reuses them."""
    h = hashlib.sha256(
        json.dumps([ENCODING_VERSION, config.embedding_model, adapter_digest(config.embedding_adapter),
                    vector_precision(config)]).encode()
    )
    for text in texts:
        h.update(f"{text}\n".encode())
    path = Path(embedder.models_dir) / f"{name}-{h.hexdigest()[:16]}.npy"
    try:
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    except (OSError, ValueError):
        pass
    vectors = embedder.encode(texts).astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only models folder: the next build encodes them again
        log.warning("Scope example vectors not cached in %s: %s", path.parent, exc)
    return vectors


def current_build(index_dir: Path) -> Path | None:
    """Directory of the build in service, or None when nothing was built yet."""
    pointer = index_dir / "CURRENT"
    if not pointer.exists():
        return None
    path = index_dir / "builds" / pointer.read_text().strip()
    return path if (path / "manifest.json").exists() else None


def build_index(
    config: RagConfig,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    show_progress: bool = False,
    entries: list[Entry] | None = None,
) -> BuildReport:
    """Ingest the KB (`entries`, else the files of `config.kb_dir`) into a new build unless the current one matches."""
    import bm25s

    start = time.perf_counter()
    report = progress or (lambda _f, _d: None)
    report(0.0, "Lecture de la base de connaissances")
    entries = load_kb(config.kb_dir) if entries is None else entries
    examples = scope_examples(config)
    answered = answered_questions(config)
    key = fingerprint(config, entries, examples, answered)
    index_dir = config.index_dir
    active = current_build(index_dir)
    if not rebuild and active is not None:
        manifest = json.loads((active / "manifest.json").read_text())
        if manifest.get("fingerprint") == key:
            report(1.0, "Index déjà à jour")
            return BuildReport(
                active.name, False, manifest["entries"], manifest["views"], time.perf_counter() - start, active
            )

    if not entries:
        raise ValueError(f"No knowledge-base entry found under {config.kb_dir}")
    views = make_views(entries, config, answered)
    # Customers' questions known to be out of scope join the labelled examples' off-topic side.
    examples = examples + [(question, OUT_OF_SCOPE) for question, entry_id in answered if entry_id is None]
    embedder = embedder or Embedder.from_config(config)
    kb_views = [v["text"] for v in views if v["kind"] != "c"]
    report(0.1, f"Encodage de {len(kb_views)} passages")
    vectors = embedder.encode(kb_views, show_progress=show_progress)
    if customer := [v["text"] for v in views if v["kind"] == "c"]:  # after the KB's views (make_views' order)
        report(0.6, f"Encodage de {len(customer)} questions de clients déjà résolues")
        # The whole file's vectors are cached, whichever entries the KB still has: a publish re-encodes none.
        known = list(dict.fromkeys(question for question, entry_id in answered if entry_id is not None))
        table = dict(zip(known, _cached_vectors(known, embedder, config, "answered-questions"), strict=True))
        vectors = np.concatenate([vectors, np.stack([table[text] for text in customer])])
    if examples:
        report(0.7, f"Encodage de {len(examples)} messages étiquetés (hors sujet / dans le sujet)")
        example_vectors = _cached_vectors([text for text, _ in examples], embedder, config, "scope-examples")
        off_topic = np.array([label == OUT_OF_SCOPE for _, label in examples])
    report(0.8, "Écriture de l'index")

    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    # Every build gets its own folder, so the one in service is never touched while replaced.
    name = f"{key}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    final = builds / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=builds))
    try:
        store: VectorStore = STORES[config.vector_store](vectors.shape[1])
        store.add(vectors)
        store.save(tmp)
        bm25 = bm25s.BM25()
        bm25.index([lexical_document(e) for e in entries], show_progress=False)
        bm25.save(str(tmp / "bm25"), show_progress=False)
        (tmp / "entries.json").write_text(json.dumps([e.to_dict() for e in entries], ensure_ascii=False))
        (tmp / "views.json").write_text(json.dumps(views, ensure_ascii=False))
        if examples:
            np.savez(tmp / SCOPE_FILE, out_of_scope=example_vectors[off_topic], in_scope=example_vectors[~off_topic])
        manifest = {
            "build": name,
            "fingerprint": key,
            "entries": len(entries),
            "views": len(views),
            "dimension": int(vectors.shape[1]),
            "embedding_model": config.embedding_model,
            "embedding_adapter": adapter_digest(config.embedding_adapter),
            "embedding_precision": vector_precision(config),
            "vector_store": config.vector_store,
            "analyzer": ANALYZER_VERSION,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer_tmp = index_dir / f".CURRENT.{os.getpid()}"
    pointer_tmp.write_text(name)
    os.replace(pointer_tmp, index_dir / "CURRENT")
    _remove_old_builds(builds, keep=name)
    seconds = time.perf_counter() - start
    log.info("Index %s built: %d entries, %d views in %.1fs", name, len(entries), len(views), seconds)
    report(1.0, "Index prêt")
    return BuildReport(name, True, len(entries), len(views), seconds, final)


def _remove_old_builds(builds: Path, keep: str, stale_after_s: float = 3600) -> None:
    """Delete replaced builds, and temp folders of builds that died more than an hour ago."""
    now = time.time()
    for path in builds.iterdir():
        if path.name == keep:
            continue
        if path.name.startswith(".") and now - path.stat().st_mtime < stale_after_s:
            continue  # possibly a build in progress in another process
        shutil.rmtree(path, ignore_errors=True)


class KnowledgeIndex:
    """A loaded index build: entries, dense store, BM25 and the query corrector."""

    def __init__(self, path: Path, entries: list[Entry], views: list[dict], store: VectorStore, bm25) -> None:
        self.path = path
        self.entries = entries
        self.views = views
        self.store = store
        self.bm25 = bm25
        self.view_entry = np.array([v["entry"] for v in views], dtype=np.int64)
        self.vocab = dict(bm25.vocab_dict)
        self.corrector = QueryCorrector(self.vocab)
        self.scope_vectors: tuple[np.ndarray, np.ndarray] | None = None  # (out of scope, in scope) examples

    def scope_margin(self, vector: np.ndarray, best_dense: float) -> float | None:
        """How much closer the query is to its nearest out-of-scope example than to its nearest in-scope
        example or KB passage (cosines; > 0: nearest to something off topic); None without examples."""
        if self.scope_vectors is None:
            return None
        off_topic, in_scope = self.scope_vectors
        # einsum, not `@`: a BLAS matrix-vector product wakes BLAS's thread pool, which then fights
        # onnxruntime's threads for the cores (3 ms instead of 0.1 under load).
        nearest_off = float(np.einsum("ij,j->i", off_topic, vector).max())
        return nearest_off - max(float(np.einsum("ij,j->i", in_scope, vector).max()), best_dense)

    @classmethod
    def load(cls, index_dir: Path, vector_store: str = "faiss") -> KnowledgeIndex:
        """Load the build in service under index_dir."""
        import bm25s

        path = current_build(index_dir)
        if path is None:
            raise FileNotFoundError(f"No index under {index_dir}: run `python -m rag ingest` first")
        manifest = json.loads((path / "manifest.json").read_text())
        entries = [Entry(**e) for e in json.loads((path / "entries.json").read_text())]
        views = json.loads((path / "views.json").read_text())
        store = STORES[manifest.get("vector_store", vector_store)].load(path)
        bm25 = bm25s.BM25.load(str(path / "bm25"))
        index = cls(path, entries, views, store, bm25)
        if (path / SCOPE_FILE).exists():
            with np.load(path / SCOPE_FILE) as scope:
                if len(scope["out_of_scope"]) and len(scope["in_scope"]):
                    index.scope_vectors = (scope["out_of_scope"], scope["in_scope"])
        return index
