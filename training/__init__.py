"""Fine-tuning workbench: dataset building, run configs, TRL/PEFT training, export and the run service."""
