"""The deployment path (artifact -> map -> run -> report -> streaming inference) must not need torch."""

import subprocess
import sys

MODULES = ["hw_models.quantizer", "hw_models.placer", "hw_models.emulator", "hw_models.brian2_backend",
           "hw_models.lava_backend", "hw_models.netx", "hw_models.hardware_io", "neuro_agmm.map",
           "neuro_agmm.report", "neuro_agmm.crosscheck", "neuro_agmm.float_model", "neuro_agmm.nir_export",
           "neuro_agmm.events.datasets", "neuro_agmm.data"]


def test_deployment_modules_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
            + "".join(f"import {m}\n" for m in MODULES) + "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
