"""LoRA / QLoRA supervised fine-tuning with TRL's SFTTrainer and PEFT.

    python -m training.train --config configs/train/smollm2-lora-cpu.yaml [--dry-run] [--set training.max_steps=20]
    python -m training.train --resume runs/smollm2-lora-cpu-20260101-120000     # continue from its last checkpoint

A run writes ``runs/<run_name>-<timestamp>/``: config.yaml (resolved), status.json, train.log,
loss.jsonl (one line per logged step / evaluation), checkpoints/, adapter/ and metrics.json
(train/eval loss, baseline eval loss, runtime). ``--dry-run`` validates the config, the data and,
for GPU configs, CUDA and bitsandbytes, then exits without training (exit code 2 on a problem).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path

from logsetup import configure_cli_logging
from training.config import (
    ConfigError,
    TrainConfig,
    add_config_arguments,
    load_config,
    overrides_from_args,
    resolve_path,
    to_yaml,
)
from training.heartbeat import start_beating

log = logging.getLogger("training.train")

STATUS_FILE, METRICS_FILE, LOSS_FILE, CONFIG_FILE, LOG_FILE = (
    "status.json", "metrics.json", "loss.jsonl", "config.yaml", "train.log",
)  # fmt: skip
ADAPTER_DIR, CHECKPOINTS_DIR = "adapter", "checkpoints"


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (readers such as the UI never see half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)


def set_status(run_dir: Path, state: str, **extra) -> None:
    """Record the run state (running, finished, failed, cancelled) in status.json."""
    path = run_dir / STATUS_FILE
    current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    current.update(state=state, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra)
    write_json(path, current)


def new_run_dir(config: TrainConfig) -> Path:
    """runs/<run_name>-<UTC timestamp>/ (a new folder per run, never overwritten)."""
    base = (
        resolve_path(config.output.runs_dir)
        / f"{config.output.run_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    )
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint-N folder with the highest N, if any."""
    found = sorted((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return found[-1] if found else None


def read_examples(path: Path) -> list[dict]:
    """Chat examples of a JSONL file; raises ConfigError (French) on a missing file or a bad line."""
    if not path.is_file():
        raise ConfigError([f"fichier de données introuvable : {path} (lancez `python -m training.data build`)."])
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError([f"{path.name}, ligne {n} : JSON invalide ({exc.msg})."]) from exc
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or len(messages) < 2 or messages[-1].get("role") != "assistant":
            raise ConfigError([f"{path.name}, ligne {n} : 'messages' doit finir par un message 'assistant'."])
        rows.append(row)
    if not rows:
        raise ConfigError([f"{path.name} ne contient aucun exemple."])
    return rows


def base_model_path(config: TrainConfig, convert: bool = True) -> str:
    """What from_pretrained loads: the converted packaged GGUF (rag.llm.gguf), a local folder or a hub id."""
    name = config.model.name_or_path
    if name == "packaged" or name.endswith(".gguf"):
        from rag.llm.gguf import gguf_path_for, resolve_checkpoint

        if not convert:
            return str(gguf_path_for(name))
        return resolve_checkpoint(name, resolve_path(config.model.models_dir))
    local = resolve_path(name)
    return str(local) if local.exists() else name


def check_environment(config: TrainConfig) -> list[str]:
    """Problems that would stop the run: data, model, and for GPU configs CUDA / bitsandbytes (French)."""
    errors = []
    for name, file in (("train_file", config.data.train_file), ("validation_file", config.data.validation_file)):
        try:
            read_examples(resolve_path(file))
        except ConfigError as exc:
            errors += [f"data.{name} : {e}" for e in exc.errors]
    try:
        path = base_model_path(config, convert=False)
        name = config.model.name_or_path
        if (Path(name).is_absolute() or name.startswith((".", "~"))) and not Path(path).exists():
            errors.append(f"model.name_or_path : dossier introuvable ({path}).")
    except FileNotFoundError as exc:
        errors.append(f"model.name_or_path : {exc}.")
    if config.needs_gpu:
        import torch

        if not torch.cuda.is_available():
            errors.append(
                "Ce fichier exige un GPU NVIDIA avec CUDA (QLoRA 4 bits / bf16 / optimiseur 8 bits), "
                "mais torch ne voit aucun GPU CUDA. Utilisez configs/train/smollm2-lora-cpu.yaml sur CPU."
            )
        elif config.model.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            errors.append("Ce GPU ne gère pas bfloat16 : utilisez model.dtype: float16.")
        needs_bnb = config.model.quantization == "nf4" or "8bit" in config.training.optim
        if needs_bnb and importlib.util.find_spec("bitsandbytes") is None:
            errors.append("Le paquet bitsandbytes est requis (pip install bitsandbytes) pour NF4 / optimiseur 8 bits.")
    return errors


def _loss_logger(path: Path):
    """A TrainerCallback appending every log (loss, eval_loss, learning rate) to a JSONL file."""
    from transformers import TrainerCallback

    class LossLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")

    return LossLogger()


def fit_to_template(messages: list[dict], tokenizer) -> list[dict]:
    """Merge the system message into the first user turn when the chat template refuses 'system' (Mistral)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    try:
        tokenizer.apply_chat_template(messages, tokenize=False)
        return messages
    except Exception:  # jinja TemplateError: "roles must alternate user/assistant"
        system, first, *rest = messages
        return [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}, *rest]


def _datasets(config: TrainConfig, tokenizer):
    """Train/validation datasets as conversational prompt-completion (loss on the answer only)."""
    from datasets import Dataset

    def load(file: str, limit: int):
        rows = read_examples(resolve_path(file))
        rows = rows[:limit] if limit else rows
        rows = [fit_to_template(r["messages"], tokenizer) for r in rows]
        return Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in rows])

    return load(config.data.train_file, config.data.max_train_samples), load(
        config.data.validation_file, config.data.max_eval_samples
    )


def _load_model(config: TrainConfig, path: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, config.model.dtype)
    kwargs: dict = {"dtype": dtype}
    if config.model.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        # Quantized storage in the compute dtype, so FSDP / ZeRO-3 can shard the 4-bit weights evenly.
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_storage=dtype,
        )
        sharded = os.environ.get("ACCELERATE_USE_FSDP") == "true" or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
        if not sharded:  # one whole copy per process, on its own GPU (LOCAL_RANK under accelerate launch)
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if config.model.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.model.gradient_checkpointing)
    return model, tokenizer


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> dict:
    """Run SFT with a LoRA adapter; write adapter/, metrics.json and loss.jsonl in run_dir."""
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    t = config.training
    if t.threads:
        torch.set_num_threads(t.threads)
    start = time.perf_counter()
    path = base_model_path(config)
    log.info("base model: %s", path)
    model, tokenizer = _load_model(config, path)
    train_ds, eval_ds = _datasets(config, tokenizer)
    log.info("examples: %d train, %d validation", len(train_ds), len(eval_ds))
    target = config.lora.target_modules
    peft_config = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules="all-linear" if target == ["all-linear"] else target,
        task_type="CAUSAL_LM",
    )
    args = SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        optim=t.optim,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=t.eval_steps,
        eval_on_start=t.eval_on_start and not resume,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        max_length=config.data.max_length,
        bf16=config.model.dtype == "bfloat16",
        fp16=config.model.dtype == "float16",
        use_cpu=config.model.device == "cpu",
        activation_checkpointing=config.model.gradient_checkpointing,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_loss_logger(run_dir / LOSS_FILE)],
    )
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        log.warning("no checkpoint in %s: starting from scratch", run_dir)
    rank, world = trainer.args.process_index, trainer.args.world_size
    log.info("process %d/%d training", rank, world)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    log.info("process %d/%d trained %d steps", rank, world, result.global_step)
    trainer.save_model(str(run_dir / ADAPTER_DIR))  # the main process writes (several processes: one adapter)
    main = is_main_process()
    if main:
        tokenizer.save_pretrained(str(run_dir / ADAPTER_DIR))
    # Every process keeps the same log history (the loss file is the main process'): they agree on whether
    # a last evaluation is needed, which all of them must then run together.
    logged = trainer.state.log_history
    evals = [(r["step"], r["eval_loss"]) for r in logged if "eval_loss" in r]
    train_losses = [r["loss"] for r in logged if "loss" in r]
    if not evals or evals[-1][0] != result.global_step:  # no evaluation at the last step yet
        evals.append((result.global_step, trainer.evaluate()["eval_loss"]))
    metrics = {
        "base_model": path,
        "train_loss": result.metrics.get("train_loss"),  # mean over this session's steps
        "first_train_loss": train_losses[0] if train_losses else None,
        "last_train_loss": train_losses[-1] if train_losses else None,
        "eval_loss": evals[-1][1],
        "initial_eval_loss": evals[0][1] if evals[0][0] == 0 else None,
        "eval_history": [{"step": step, "eval_loss": loss} for step, loss in evals],
        "train_runtime_s": result.metrics.get("train_runtime"),
        "total_runtime_s": round(time.perf_counter() - start, 2),
        "global_step": result.global_step,
        "train_examples": len(train_ds),
        "eval_examples": len(eval_ds),
        "resumed_from": str(checkpoint) if checkpoint else None,
        "adapter": str(run_dir / ADAPTER_DIR),
    }
    if main:
        metrics["processes"] = trainer.args.world_size
        write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def is_main_process() -> bool:
    """True in a plain run, and in rank 0 of an `accelerate launch` run (the one that writes the run's files)."""
    return int(os.environ.get("RANK", "0")) == 0


def read_loss_log(run_dir: Path) -> list[dict]:
    """Rows of loss.jsonl (skips a half-written last line)."""
    path = Path(run_dir) / LOSS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--dry-run", action="store_true", help="Validate config, data and hardware; do not train.")
    parser.add_argument("--run-dir", help="Folder of this run (default: runs/<run_name>-<timestamp>).")
    parser.add_argument(
        "--resume", nargs="?", const="latest", metavar="RUN_DIR",
        help="Continue a run from its last checkpoint: the given run folder, or the latest run of output.run_name.",
    )  # fmt: skip
    return parser


def _resume_dir(config: TrainConfig, resume: str) -> Path:
    if resume != "latest":
        return resolve_path(resume)
    runs = sorted(resolve_path(config.output.runs_dir).glob(f"{config.output.run_name}-*"))
    with_ckpt = [r for r in runs if latest_checkpoint(r)]
    if not with_ckpt:
        raise ConfigError([f"aucun run « {config.output.run_name} » avec checkpoint à reprendre."])
    return with_ckpt[-1]


def _setup_logging(run_dir: Path | None) -> None:
    """The app's redacting log setup, to stderr and (rank 0 of a run) the run's log file."""
    configure_cli_logging("INFO", run_dir / LOG_FILE if run_dir is not None and is_main_process() else None)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        config_path = args.config
        if args.resume and args.resume != "latest" and not config_path:
            config_path = str(Path(args.resume) / CONFIG_FILE)
        if not config_path:
            raise ConfigError(["indiquez --config FICHIER.yaml (ou --resume DOSSIER_DU_RUN)."])
        config = load_config(TrainConfig, config_path, overrides_from_args(args))
        if args.dry_run:
            _setup_logging(None)
            problems = check_environment(config)
            if problems:
                raise ConfigError(problems)
            print(f"✅ Configuration valide ({config_path}) : modèle {config.model.name_or_path}, "
                  f"{'GPU' if config.needs_gpu else 'CPU'}, {config.training.max_steps} pas. Aucun entraînement lancé.")  # fmt: skip
            return 0
        run_dir = _resume_dir(config, args.resume) if args.resume else Path(args.run_dir or new_run_dir(config))
        run_dir = resolve_path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        problems = check_environment(config)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _setup_logging(run_dir)
    main = is_main_process()  # with several processes, rank 0 alone writes the run's files
    if main:
        start_beating(run_dir)  # the run is seen alive from every replica, even if the one that started it dies
        (run_dir / CONFIG_FILE).write_text(to_yaml(config), encoding="utf-8")
        set_status(run_dir, "running", pid=os.getpid(), started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    log.info("run %s started", run_dir.name)
    try:
        metrics = train(config, run_dir, resume=bool(args.resume))
    except Exception as exc:
        log.exception("run failed")
        if main:
            set_status(run_dir, "failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    if not main:
        return 0
    set_status(run_dir, "finished", metrics=metrics)
    log.info("run finished: %s", json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
