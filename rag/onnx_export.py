"""One-time export of a sentence-transformers BERT encoder (the packaged MiniLM) to ONNX.

    python -m rag.onnx_export --model PATH --out FILE.onnx

The serving process runs the exported graph with onnxruntime and never imports torch: when the
cached export is missing, `rag.embeddings` runs this module in a subprocess. The graph maps
(input_ids, attention_mask) to the last hidden state; mean pooling and L2 normalisation are done
by the caller, as sentence-transformers does them. The file is written under a temp name, checked
against the torch model, then renamed into place, so a crash never leaves a half export.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

EXPORTER_VERSION = "1"  # bump when the exported graph changes (inputs, opset, wrapper)
OPSET = 17
# Files whose bytes define the encoder's output; hashed into the export's name.
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "modules.json",
               "sentence_bert_config.json", "1_Pooling/config.json")  # fmt: skip
CHECK_TEXTS = ("Comment télécharger ma facture ?", "Je n'ai plus de réseau depuis ce matin", "code RIO")


def fingerprint(model_dir: Path) -> str:
    """Hash of the model files plus the exporter (this module's version and torch's)."""
    h = hashlib.sha256(f"exporter={EXPORTER_VERSION};opset={OPSET};torch={_torch_version()}".encode())
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            h.update(name.encode())
            with path.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()[:16]


def _torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def export_path(models_dir: Path, model_dir: Path) -> Path:
    """Where the export of `model_dir` is cached under `models_dir`."""
    return Path(models_dir) / f"embedding-{fingerprint(model_dir)}.onnx"


def export(model_dir: Path, out: Path) -> Path:
    """Export `model_dir`'s transformer to `out` (atomic), checked against torch on a few sentences."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    class Encoder(torch.nn.Module):
        """BERT with token_type_ids fixed to 0 (single sentences), returning the last hidden state."""

        def __init__(self, bert) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            ids = torch.zeros_like(input_ids)
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=ids).last_hidden_state

    encoder = Encoder(model).eval()
    sample = tokenizer(list(CHECK_TEXTS), padding=True, return_tensors="pt")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with torch.no_grad():
            torch.onnx.export(
                encoder,
                (sample["input_ids"], sample["attention_mask"]),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "last_hidden_state": {0: "batch", 1: "sequence"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
            expected = encoder(sample["input_ids"], sample["attention_mask"]).numpy()
        import onnxruntime as ort

        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        feed = {k: sample[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")}
        got = session.run(None, feed)[0]
        diff = float(np.abs(got - expected).max())
        if diff > 1e-4:
            raise RuntimeError(f"ONNX export differs from torch by {diff:.2e}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"model_dir": str(model_dir), "torch": _torch_version(), "exporter": EXPORTER_VERSION, "max_diff": diff}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m rag.onnx_export`."""
    parser = argparse.ArgumentParser(prog="python -m rag.onnx_export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="sentence-transformers model folder")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Export and print the written path."""
    args = make_parser().parse_args(argv)
    print(export(args.model, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
