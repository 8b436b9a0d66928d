"""Dense vector stores: a small interface with a FAISS and an exact NumPy implementation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class VectorStore(ABC):
    """Inner-product search over unit vectors, persisted in one file."""

    filename: str

    @abstractmethod
    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (n, d) float32."""

    @abstractmethod
    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids) of the k best rows for one query vector (d,)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the store into directory."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> VectorStore:
        """Read a store written by save()."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of stored vectors."""


class FaissVectorStore(VectorStore):
    """Exact inner-product FAISS index (IndexFlatIP): fast enough for thousands of KB passages."""

    filename = "dense.faiss"

    def __init__(self, dimension: int, index=None) -> None:
        import faiss

        self.index = index if index is not None else faiss.IndexFlatIP(dimension)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        return scores[0], ids[0]

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(directory / self.filename))

    @classmethod
    def load(cls, directory: Path) -> FaissVectorStore:
        import faiss

        index = faiss.read_index(str(directory / cls.filename))
        return cls(index.d, index)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)


class NumpyVectorStore(VectorStore):
    """Brute-force NumPy store: no native dependency, handy for tests and tiny KBs."""

    filename = "dense.npy"

    def __init__(self, dimension: int, matrix: np.ndarray | None = None) -> None:
        self.matrix = matrix if matrix is not None else np.zeros((0, dimension), dtype=np.float32)

    def add(self, vectors: np.ndarray) -> None:
        self.matrix = np.vstack([self.matrix, vectors.astype(np.float32)])

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.matrix @ query.astype(np.float32).ravel()
        k = min(k, self.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < self.size else np.arange(self.size)
        top = top[np.argsort(-scores[top])]
        return scores[top], top

    def save(self, directory: Path) -> None:
        np.save(directory / self.filename, self.matrix)

    @classmethod
    def load(cls, directory: Path) -> NumpyVectorStore:
        matrix = np.load(directory / cls.filename)
        return cls(matrix.shape[1], matrix)

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])


STORES: dict[str, type[VectorStore]] = {"faiss": FaissVectorStore, "numpy": NumpyVectorStore}
