"""The serving process (app, API, UI, answer workers started) never imports the training or torch stacks.

Those modules take 15-25 s to import on 2 cores and hundreds of MB: training and evaluation load
them in their own subprocesses, the embeddings run on onnxruntime.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from settings import ROOT

TRAINING_ONLY = ("sentence_transformers", "sklearn", "datasets", "transformers", "trl", "peft", "torch", "evaluate")

SCRIPT = """
import json, sys
from settings import get_settings
from services import build_services
from api import create_api
from ui import build_app

settings = get_settings(database_url=sys.argv[1], secret_key="s" * 40, rag={"index_dir": sys.argv[2], "answer_processes": 2})
services = build_services(settings)
services.prepare()
assert services.startup_error is None, services.startup_error
answer = services.engine.answer("Comment télécharger ma facture ?")
assert answer.sources, answer
app = build_app(services)
create_api(services)
heavy = json.loads(sys.argv[3])
workers = services.engine.pool.alive  # the answers above came from the worker processes
services.close()
print(json.dumps({"loaded": sorted(m for m in heavy if m in sys.modules), "backend": services.engine.embedder.backend,
                  "workers": workers}))
"""


@pytest.mark.slow
def test_serving_modules_leave_the_training_stack_unimported(shipped_config, embedder, tmp_path):
    assert embedder.backend == "onnx"  # the export exists: the child does not have to make it
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            f"sqlite:///{tmp_path / 'app.db'}",
            str(shipped_config.index_dir),
            json.dumps(TRAINING_ONLY),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"loaded": [], "backend": "onnx", "workers": 2}
