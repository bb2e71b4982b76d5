"""rlhf: reward models (HelpSteer2-Preference), REINFORCE/RLOO and DPO alignment on LoRA-wrapped Llamas.

Layers, each importing only the ones above it in this list (tests/test_layout.py checks it):
- the paper's math and shared types at the top level: `types`, `losses`, `advantages`, `metrics`, plus `errors`
  (one-line failures) and `files` (atomic writes, refusing to replace results);
- `models` (backbone builder, heads, policy), `training` (checkpoints, resume, summaries, schedules, sweeps, plans),
  `data` (formats, templates, encoding, data modules), `eval` (RewardBench, pair scoring, reports, plots);
- `reward` (the reward-model LightningModule, its objectives, ExPO, export, scoring), then `dpo`, `align`
  (REINFORCE/RLOO) and `serve` (the HTTP reward server), side by side;
- `cli` (the LightningCLI entry points), then `demo` (make demo), `results` and `study` (published runs).

Modules that moved when the package was laid out by capability keep their old import paths, `python -m` names and
YAML `class_path`s: the old name is the new module itself, with a FutureWarning "rlhf.X moved to rlhf.Y". `MOVED`
lists them; they are aliases only, so new code uses the new paths (the test suite turns the warning into an error).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "rlhf.align_demo": "rlhf.demo.align",
    "rlhf.atomic_write": "rlhf.files",
    "rlhf.callbacks": "rlhf.eval.callback",
    "rlhf.checkpoint": "rlhf.training.checkpoint",
    "rlhf.compare_policies": "rlhf.align.compare",
    "rlhf.demo_smollm2": "rlhf.results.demo_smollm2",
    "rlhf.distributed": "rlhf.training.distributed",
    "rlhf.dpo_module": "rlhf.dpo.module",
    "rlhf.expo": "rlhf.reward.expo",
    "rlhf.export": "rlhf.reward.export",
    "rlhf.model_card": "rlhf.reward.model_card",
    "rlhf.outputs": "rlhf.files",
    "rlhf.plan": "rlhf.training.plan",
    "rlhf.plots": "rlhf.eval.plots",
    "rlhf.reinforce_module": "rlhf.align.module",
    "rlhf.remote_reward": "rlhf.align.remote_reward",
    "rlhf.resume": "rlhf.training.resume",
    "rlhf.reward_module": "rlhf.reward.module",
    "rlhf.rewardbench": "rlhf.eval.rewardbench",
    "rlhf.rewards": "rlhf.align.rewards",
    "rlhf.rollout": "rlhf.align.rollout",
    "rlhf.run_logs": "rlhf.training.run_logs",
    "rlhf.schedules": "rlhf.training.schedules",
    "rlhf.score": "rlhf.reward.score",
    "rlhf.serve_api": "rlhf.serve.api",
    "rlhf.serve_guard": "rlhf.serve.guard",
    "rlhf.serve_page": "rlhf.serve.page",
    "rlhf.serve_requests": "rlhf.serve.bodies",
    "rlhf.study.reuse": "rlhf.training.reuse",
    "rlhf.summary": "rlhf.training.summary",
    "rlhf.sweep": "rlhf.training.sweep",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name of `MOVED` and loads it as the new module (the same object, so classes, isinstance
    and pickles agree); `python -m rlhf.<old>` runs the new module's code as __main__."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        new = importlib.util.find_spec(MOVED[fullname])
        return importlib.util.spec_from_loader(fullname, self, origin=new.origin if new else None)

    def _warn(self, fullname: str) -> None:
        warnings.warn(f"{fullname} moved to {MOVED[fullname]}; use the new path", FutureWarning, stacklevel=3)

    def create_module(self, spec):
        self._warn(spec.name)
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system sets module.__spec__ to the alias's spec next
        return module

    def exec_module(self, module) -> None:  # the new module already ran; give it back its own spec
        module.__spec__ = module.__spec__.loader_state

    def get_code(self, fullname):  # runpy (`python -m rlhf.<old>`) runs the new module's code under __main__
        self._warn(fullname)
        spec = importlib.util.find_spec(MOVED[fullname])
        return spec.loader.get_code(MOVED[fullname])


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
