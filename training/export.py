"""Export a finished run: copy its LoRA adapter, or merge it into the base model (--merge).

    python -m training.export --run runs/smollm2-lora-cpu-20260101-120000 --merge --out models/mobilia-smollm2

Without --merge the adapter folder is copied with an ``export.json`` naming its base model;
with --merge the adapter is folded into the base weights (PEFT ``merge_and_unload``) and a plain
checkpoint is saved, loadable by transformers without PEFT (the chat's transformers backend).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from training.config import ConfigError, TrainConfig, load_config, resolve_path
from training.train import ADAPTER_DIR, CONFIG_FILE, base_model_path


def export(run_dir: Path, out: Path, merge: bool = False) -> Path:
    """Write the adapter (or the merged model) of run_dir into out; return out."""
    run_dir, out = resolve_path(run_dir), resolve_path(out)
    adapter = run_dir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError([f"aucun adaptateur dans {run_dir} : le run est-il terminé ?"])
    config = load_config(TrainConfig, run_dir / CONFIG_FILE)
    base = base_model_path(config)
    out.mkdir(parents=True, exist_ok=True)
    if merge:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, config.model.dtype))
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.save_pretrained(out)
        AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(out)
    else:
        shutil.copytree(adapter, out, dirs_exist_ok=True)
    info = {"run": run_dir.name, "base_model": base, "merged": merge,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    (out / "export.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="Run folder (runs/<name>).")
    parser.add_argument("--out", required=True, help="Destination folder.")
    parser.add_argument("--merge", action="store_true", help="Merge the adapter into the base weights.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        out = export(Path(args.run), Path(args.out), merge=args.merge)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"Exporté dans {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
