import json
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from fer.evaluation.metrics import predict_logits
from fer.inference.memory import keep_freed_memory
from fer.model import create_model
from fer.training.config import recipe
from tests.conftest import ROOT


def page_faults(work) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    work()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_keeping_freed_memory_stops_evaluation_from_faulting_pages_in_again():
    # in a fresh process: the thresholds are process-wide and glibc's dynamic default cannot be put back
    code = "from tests.test_memory import measure_both; import json; print(json.dumps(measure_both()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result is None:
        pytest.skip("the C library is not glibc: keep_freed_memory leaves it alone")
    default, kept = result
    assert default > 10_000 and kept < default / 20


def measure_both():
    torch.set_num_threads(1)
    model = create_model(recipe("production").model).to(memory_format=torch.channels_last)
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)

    def evaluate():
        predict_logits(model, faces)

    evaluate()
    default = page_faults(evaluate)
    if not keep_freed_memory():
        return None
    evaluate()
    return default, page_faults(evaluate)
