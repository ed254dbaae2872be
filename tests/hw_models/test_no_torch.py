"""The deployment path (artifact -> map -> run -> report -> streaming inference) must not need torch."""

import subprocess
import sys

MODULES = ["hw_models.mapping.quantizer", "hw_models.mapping.placer", "hw_models.backends.emulator", "hw_models.backends.brian2",
           "hw_models.backends.lava.runner", "hw_models.mapping.netx", "hw_models.mapping.netx_rules",
           "hw_models.mapping.netx_quantizer", "neuro_agmm.deploy.nir_import", "neuro_agmm.events.prophesee",
           "neuro_agmm.events.structured", "hw_models.mapping.hardware_section", "neuro_agmm.deploy.mapping",
           "neuro_agmm.deploy.energy_report", "neuro_agmm.deploy.crosscheck", "neuro_agmm.deploy.float_model", "neuro_agmm.deploy.nir",
           "neuro_agmm.data.event_datasets", "neuro_agmm.data", "neuro_agmm.data.inputs", "hw_models.backends.registry",
           "neuro_agmm.deploy.network", "neuro_agmm.deploy.fidelity", "neuro_agmm.streaming.run", "neuro_agmm.cli",
           "neuro_agmm.map", "neuro_agmm.crosscheck", "neuro_agmm.report", "neuro_agmm.infer"]


def test_deployment_modules_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
            + "".join(f"import {m}\n" for m in MODULES) + "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
