"""One-time export of a sentence-transformers BERT encoder (the packaged MiniLM) to ONNX.

    python -m rag.onnx_export --model PATH --out FILE.onnx [--adapter LORA_FOLDER]

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


def fingerprint(model_dir: Path, adapter: Path | None = None) -> str:
    """Hash of the model files, the LoRA adapter merged into it (if any) and the exporter (its version, torch's)."""
    h = hashlib.sha256(f"exporter={EXPORTER_VERSION};opset={OPSET};torch={_torch_version()}".encode())
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            h.update(name.encode())
            with path.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    if adapter is not None:
        h.update(f"adapter={adapter_digest(adapter)}".encode())
    return h.hexdigest()[:16]


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def adapter_digest(adapter: Path | None) -> str:
    """Hash of a LoRA adapter folder's files ("none" without one): what the vectors depend on."""
    if adapter is None:
        return "none"
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = Path(adapter) / name
        if not path.is_file():
            raise FileNotFoundError(f"{adapter} is not a LoRA adapter folder (missing {name})")
        with path.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()[:16]


def load_merged(model_dir: Path, adapter: Path | None = None):
    """The transformers encoder of `model_dir`, with the LoRA adapter merged into its weights when given."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.eval()


def _torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def export_path(models_dir: Path, model_dir: Path, adapter: Path | None = None) -> Path:
    """Where the export of `model_dir` (with `adapter` merged) is cached under `models_dir`."""
    return Path(models_dir) / f"embedding-{fingerprint(model_dir, adapter)}.onnx"


def export(model_dir: Path, out: Path, adapter: Path | None = None) -> Path:
    """Export `model_dir`'s transformer (LoRA `adapter` merged) to `out` (atomic), checked against torch."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = load_merged(model_dir, adapter)
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
    meta = {"model_dir": str(model_dir), "adapter": str(adapter) if adapter else None, "torch": _torch_version(),
            "exporter": EXPORTER_VERSION, "max_diff": diff}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m rag.onnx_export`."""
    parser = argparse.ArgumentParser(prog="python -m rag.onnx_export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="sentence-transformers model folder")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter folder merged into the model first")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Export and print the written path."""
    args = make_parser().parse_args(argv)
    print(export(args.model, args.out, args.adapter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
