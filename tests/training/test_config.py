"""Config classes: YAML + overrides, one validation place, French errors, shipped configs."""

from __future__ import annotations

import pytest

from training.config import (
    ROOT,
    ConfigError,
    DataBuildConfig,
    EvalConfig,
    TrainConfig,
    field_help,
    load_config,
    to_yaml,
)
from training.train import main as train_main
from training.train import make_parser

SHIPPED = sorted((ROOT / "configs" / "train").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(TrainConfig, path)
    text = path.read_text(encoding="utf-8")
    assert "### model" in text and "### training" in text
    assert load_config(TrainConfig, text=to_yaml(config)) == config  # round trip


def test_shipped_cpu_and_gpu_configs():
    cpu = load_config(TrainConfig, "configs/train/smollm2-lora-cpu.yaml")
    assert cpu.model.name_or_path == "packaged" and not cpu.needs_gpu and cpu.training.max_steps <= 300
    gpu = load_config(TrainConfig, "configs/train/mistral7b-qlora.yaml")
    assert gpu.model.name_or_path == "mistralai/Mistral-7B-Instruct-v0.2"
    assert (gpu.model.quantization, gpu.model.dtype, gpu.training.optim) == ("nf4", "bfloat16", "paged_adamw_8bit")
    assert gpu.model.gradient_checkpointing and gpu.needs_gpu
    assert load_config(DataBuildConfig, "configs/data/default.yaml").split.seed == 42


def test_overrides_set_and_per_field_flags():
    config = load_config(TrainConfig, text="training: {max_steps: 10}",
                         overrides=["training.learning_rate=1e-4", "lora.target_modules=[q_proj]"])  # fmt: skip
    assert (config.training.max_steps, config.training.learning_rate, config.lora.target_modules) == (
        10, 1e-4, ["q_proj"],
    )  # fmt: skip
    args = make_parser().parse_args(["--config", "x.yaml", "--training.max_steps", "3", "--set", "lora.r=2"])
    from training.config import overrides_from_args

    assert overrides_from_args(args) == ["lora.r=2", "training.max_steps=3"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("training: {max_steps: 0}", "training.max_steps doit être un entier strictement positif"),
        ("training: {learning_rate: abc}", "training.learning_rate doit être un nombre"),
        ("training: {learning_rate: 5}", "training.learning_rate doit être compris"),
        ("training: {optim: adam}", "training.optim : valeur « adam » non reconnue"),
        ("model: {dtype: int8}", "model.dtype : valeur « int8 » non reconnue"),
        ("model: {quantization: nf4}", "exige model.device: cuda"),
        ("model: {dtype: bfloat16}", "Sur CPU, model.dtype doit être float32"),
        ("lora: {dropout: 1.5}", "lora.dropout doit être compris"),
        ("lora: {target_modules: []}", "lora.target_modules ne doit pas être vide"),
        ("training: {foo: 1}", "clé inconnue « training.foo »"),
        ("trainer: {}", "section inconnue « trainer »"),
        ("model: [1, 2]", "la section model doit être un ensemble de clés"),
        ("model: {gradient_checkpointing: 3}", "doit valoir true ou false"),
        ("output: {run_name: 'a b'}", "output.run_name doit être un nom simple"),
        ("training: [", "YAML invalide"),
    ],
)
def test_validation_errors_are_french(yaml_text, message):
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, text=yaml_text)
    assert any(message in e for e in err.value.errors), err.value.errors


def test_all_errors_are_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, text="training: {max_steps: x, seed: y}\nfoo: {}")
    assert len(err.value.errors) == 3


def test_every_field_has_help():
    for cls in (TrainConfig, DataBuildConfig):
        rows = field_help(cls)
        assert rows and all(help_text for _, _, help_text in rows)


def test_dry_run_cpu_ok_and_gpu_explains(capsys, tmp_path):
    assert train_main(["--config", "configs/train/smollm2-lora-cpu.yaml", "--dry-run"]) in (0, 2)
    code = train_main(["--config", "configs/train/mistral7b-qlora.yaml", "--dry-run"])
    err = capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert code == 2 and "GPU NVIDIA avec CUDA" in err
    missing = train_main(["--config", "configs/train/smollm2-lora-cpu.yaml", "--dry-run",
                          "--set", f"data.train_file={tmp_path / 'none.jsonl'}"])  # fmt: skip
    assert missing == 2 and "fichier de données introuvable" in capsys.readouterr().err


# ----------------------------------------------------------------------------- allowed folders

OUTSIDE = "/var/tmp/mobilia-outside"  # neither the project's folders nor the test temp dirs


@pytest.mark.parametrize(
    ("cls", "yaml_text", "key"),
    [
        (TrainConfig, f"output: {{runs_dir: {OUTSIDE}}}", "output.runs_dir"),
        (TrainConfig, "data: {train_file: ../../etc/passwd}", "data.train_file"),
        (TrainConfig, "data: {validation_file: datasets/../../secret.jsonl}", "data.validation_file"),
        (TrainConfig, "model: {name_or_path: /etc}", "model.name_or_path"),
        (TrainConfig, "model: {models_dir: ~/models}", "model.models_dir"),
        (EvalConfig, f"evaluation: {{runs_dir: {OUTSIDE}}}\ncandidates: [{{name: e, kind: extractive}}]",
         "evaluation.runs_dir"),
        (EvalConfig, "sets: {eval_files: [/etc/hostname]}\ncandidates: [{name: e, kind: extractive}]",
         "sets.eval_files[0]"),
        (EvalConfig, "candidates: [{name: a, kind: llm, adapter: /root/adapter}]", "candidates[0].adapter"),
        (DataBuildConfig, f"output: {{out_dir: {OUTSIDE}}}", "output.out_dir"),
    ],
)
def test_paths_outside_the_allowed_folders_are_refused(cls, yaml_text, key):
    with pytest.raises(ConfigError) as err:
        load_config(cls, text=yaml_text)
    errors = [e for e in err.value.errors if e.startswith(f"{key} : le chemin")]
    assert errors and "sort des dossiers autorisés" in errors[0] and "outside the allowed folders" in errors[0]
    assert not any("introuvable" in e for e in err.value.errors)  # no probing of files outside


def test_project_folders_hub_ids_and_allowed_dirs_are_accepted(tmp_path, monkeypatch):
    config = load_config(TrainConfig, text="model: {name_or_path: HuggingFaceTB/SmolLM2-135M-Instruct}\n"
                                           "data: {train_file: datasets/processed/x.jsonl}\noutput: {runs_dir: runs}")  # fmt: skip
    assert config.model.name_or_path.startswith("HuggingFaceTB/")
    assert load_config(TrainConfig, text=f"output: {{runs_dir: {tmp_path}}}").output.runs_dir == str(tmp_path)
    monkeypatch.setenv("MOBILIA_ALLOWED_DIRS", "[]")  # the admins' list decides
    with pytest.raises(ConfigError, match=r"output\.runs_dir : le chemin"):
        load_config(TrainConfig, text=f"output: {{runs_dir: {tmp_path}}}")
    monkeypatch.setenv("MOBILIA_RUNS_DIR", str(tmp_path))  # the settings' runs folder is allowed
    assert load_config(TrainConfig, text=f"output: {{runs_dir: {tmp_path / 'sub'}}}")


def test_a_symlink_out_of_an_allowed_folder_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(OUTSIDE.rsplit("/", 1)[0])
    with pytest.raises(ConfigError, match=r"data\.train_file : le chemin"):
        load_config(TrainConfig, text=f"data: {{train_file: {tmp_path / 'link' / 'x.jsonl'}}}")
