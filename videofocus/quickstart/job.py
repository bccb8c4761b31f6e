"""``videofocus quickstart``: the whole job on built-in data, from nothing to a report.

What it trains and writes is the command's description (:mod:`videofocus.cli.quickstart`); how
each row is obtained is :data:`QUICK_PROTOCOL`. Every glimpse row also reports
``accuracy_warmup_net``, its glimpses read by the shared warm-up network: the column where all
policies are compared on equal terms.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.config import Config, load_config, resolve_config_path
from videofocus.evaluation.evaluate import evaluate_checkpoint
from videofocus.experiment.grid import HEURISTICS, ExplicitVariant, Grid
from videofocus.experiment.report import comparison_rows
from videofocus.experiment.runner import run_grid
from videofocus.inference.model import load_inference_model
from videofocus.quickstart.report import (
    label_validation,
    report_markdown,
    reported_split,
    summary_text,
    write_report,
    write_val_manifest,
)
from videofocus.train.pipeline import stage_config
from videofocus.viz.command import render_glimpses
from videofocus.viz.tradeoff import plot_tradeoff

__all__ = ["DEFAULT_CONFIG", "NAMES", "quickstart_config", "quickstart_grid", "run_quickstart"]

#: The built-in config the quickstart runs by default.
DEFAULT_CONFIG = "synthetic_tiny"

#: The quick protocol's shortcuts, to keep it short (``bench policy`` trains in full): at most
#: these epochs for the glance-only baseline and the differentiable policy (longer changes
#: neither on this benchmark; docs/benchmarks.md), this share of the recurrent policy's
#: timesteps for the plain-PPO one.
QUICK_GLANCE_EPOCHS = 4
QUICK_DIFFERENTIABLE_EPOCHS = 6
QUICK_PPO_SHARE = 0.5

#: Report rows, in order: ``bench policy``'s rows (same names, same order) but its variants.
NAMES = (
    "dense",
    "glance_only",
    "random",
    "centre",
    "saliency",
    "differentiable",
    "ppo",
    "recurrent_ppo",
)

#: How each report row is obtained, in the words of report.md.
QUICK_PROTOCOL = (
    "`dense` and `glance_only` are their own checkpoints (`glance_only` trained for at most "
    "{glance_epochs} epochs: it stays at chance however long it trains); `recurrent_ppo` is the "
    "fine-tuned model of the three AdaFocus stages; `random`, `centre` and `saliency` are the "
    "warm-up network, not trained further, reading the heuristic's glimpses at the option "
    "`recurrent_ppo` uses most (the same glimpse cost); `ppo` is a plain-PPO policy trained on "
    "the same warm-up network for half the timesteps and evaluated on it (no fine-tune); "
    "`differentiable` is the AdaFocusV2-style policy trained end to end through the crop at that "
    "option for {epochs}."
)


def quickstart_config(config: str | Path | None, out: Path, overrides: list[str]) -> Config:
    """The tiny config (or ``config``) with its data under ``out``."""
    cfg = load_config(config or DEFAULT_CONFIG, overrides)
    return replace(cfg, data=replace(cfg.data, root=str(out / "data")))


def quickstart_grid(
    config: str | Path | None,
    out: Path,
    overrides: list[str],
    differentiable_epochs: int | None = QUICK_DIFFERENTIABLE_EPOCHS,
    ppo_timesteps_share: float = QUICK_PPO_SHARE,
) -> Grid:
    """The quick protocol (see the module docs) as a grid for the experiment runner."""
    path = resolve_config_path(config or DEFAULT_CONFIG)
    common = (*overrides, f"data.root={out / 'data'}")
    cfg = load_config(path, list(common))
    steps = max(1, int(cfg.policy.total_timesteps * ppo_timesteps_share))
    diff: tuple[str, ...] = ()
    if differentiable_epochs is not None:
        epochs = min(differentiable_epochs, stage_config(cfg, "differentiable").train.epochs)
        diff = (f"train.finetune_epochs={epochs}",)
    glance = (f"train.epochs={min(cfg.train.epochs, QUICK_GLANCE_EPOCHS)}",)
    learned = "recurrent_ppo"
    variants = (
        ExplicitVariant("dense", policy="dense"),
        ExplicitVariant("glance_only", glance, policy="glance_only"),
        ExplicitVariant(learned, policy=learned),
        *(ExplicitVariant(h, policy=h, option_of=learned, finetune=False) for h in HEURISTICS),
        ExplicitVariant("differentiable", diff, policy="differentiable", option_of=learned),
        ExplicitVariant("ppo", (f"policy.total_timesteps={steps}",), policy="ppo", finetune=False),
    )
    return Grid(path, path, common, (), {}, variants, (None,))


def run_quickstart(
    out: str | Path,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: bool = True,
    *,
    differentiable_epochs: int | None = QUICK_DIFFERENTIABLE_EPOCHS,
    ppo_timesteps_share: float = QUICK_PPO_SHARE,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the quickstart into ``out`` (see the module docs) and return the report rows.

    :param resume: reuse the stages already finished in ``out`` (False: retrain them all).
    :param differentiable_epochs: most epochs of the differentiable policy's stage; None: as
        long as the fine-tune, as ``bench policy`` trains it.
    :param log: where progress lines go (default: stderr).
    """
    start = time.perf_counter()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    overrides = list(overrides or [])
    cfg = quickstart_config(config, out, overrides)
    runs = out / "runs"
    if not resume and runs.exists():  # --fresh: every stage trained again
        shutil.rmtree(runs)
    grid = quickstart_grid(config, out, overrides, differentiable_epochs, ppo_timesteps_share)
    report = comparison_rows(run_grid(grid, runs, progress=progress, log=say), NAMES)
    by = {r["name"]: r for r in report}
    warmup = runs / "variants" / "recurrent_ppo" / "warmup" / "final"
    by["random"]["accuracy_warmup_own_glimpses"] = evaluate_checkpoint(cfg, warmup)["top1"]
    trained = load_checkpoint(Path(by["differentiable"]["checkpoint"]), load_trainer=False)
    epochs = by["differentiable"]["epochs"] = trained.meta.epoch + 1  # its last, 0-based
    say(f"training and evaluation done after {time.perf_counter() - start:.0f} s")

    manifest = out / "val_videos.jsonl"
    videos = write_val_manifest(cfg, manifest)
    finetune = Path(by["recurrent_ppo"]["checkpoint"])
    labels_line = label_validation(cfg, out, manifest, finetune, progress)
    gif = out / "glimpses.gif"
    render_glimpses(load_inference_model(finetune), videos[0], gif)
    title = f"videofocus quickstart: {cfg.name}, {reported_split(report)}"
    plot = plot_tradeoff(report, out / "tradeoff.png", title=title)
    files = [out / "report.json", out / "report.md", plot, gif, out / "labels.jsonl", manifest]
    seconds = time.perf_counter() - start
    quick = QUICK_PROTOCOL.format(
        epochs=f"{epochs} epoch{'s' if epochs != 1 else ''}", glance_epochs=QUICK_GLANCE_EPOCHS
    )
    markdown = report_markdown(
        report, cfg.name, quick, labels_line, [f.relative_to(out) for f in files], seconds
    )
    write_report(out, report, markdown)
    print(summary_text(report, files, time.perf_counter() - start))
    print(labels_line.replace("`", ""))
    return report
