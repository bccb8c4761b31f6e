"""``videofocus quickstart``: the whole job on built-in data, from nothing to a report.

On a fresh install, with no data and no weights, :func:`run_quickstart`:

1. generates the synthetic benchmark into ``<out>/data``;
2. trains, in ``<out>/runs``, the glance-only and dense baselines and the three AdaFocus stages
   (warm-up from the dense encoders, recurrent PPO policy, fine-tune on the policy's glimpses),
   then the two comparisons: a plain-PPO policy in ``<out>/runs/variants/ppo`` (sharing the
   dense and warm-up stages through symlinks) and the differentiable (AdaFocusV2-style) policy;
3. evaluates every method of ``videofocus bench policy`` but its variants (cost penalty, early
   exit) on the validation split: accuracy, counted GMACs per video, videos/s, glimpse statistics;
4. labels the validation videos with the fine-tuned model (the ``videofocus label`` job) and draws
   the learned policy's glimpses on the first one;
5. writes into ``<out>``: ``report.json`` (rows ``{"name", "protocol", "accuracy",
   "gmacs_per_video", "videos_per_s", ...}`` in :data:`NAMES` order), ``report.md`` (the table and
   how to read it), ``tradeoff.png``, ``glimpses.gif``, ``labels.jsonl`` (with
   ``val_videos.jsonl``, the manifest of the videos it labels), and prints the table, the files
   and the total time.

A rerun with the same ``out`` reuses every finished stage and recomputes the evaluation, the
labels and the pictures.

The QUICK protocol (``bench policy`` runs the full one, which trains a fine-tune per method):

- ``dense``, ``glance_only``: their own checkpoints (``glance_only`` trained for at most 4
  epochs);
- ``recurrent_ppo``: the fine-tuned checkpoint of the main run;
- ``random``, ``centre``, ``saliency``: the warm-up network, not trained further, reading the
  heuristic's glimpses at the option ``recurrent_ppo`` uses most (same glimpse cost);
  ``random`` also reports ``accuracy_warmup_own_glimpses``, the warm-up model with the random
  option-and-cell glimpses it was trained on;
- ``ppo``: the plain-PPO policy, trained for half the timesteps, on the warm-up network (no
  fine-tune);
- ``differentiable``: its own stage at that same option, trained as ``bench policy`` trains it
  (for at most :data:`QUICK_DIFFERENTIABLE_EPOCHS` epochs), evaluated with its
  continuous centres.

Every glimpse row also reports ``accuracy_warmup_net`` (its glimpses read by the shared warm-up
network), the column where all policies are compared on equal terms.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.learned_policy import load_focusnet, load_learned_policy
from videofocus.artifacts.load import load_model
from videofocus.config import Config, load_config
from videofocus.data.loaders import ensure_dataset
from videofocus.data.synthetic import TargetTrack, read_targets
from videofocus.evaluation.evaluate import evaluate_checkpoint
from videofocus.evaluation.policy_eval import dominant_option, evaluate_glimpse_model
from videofocus.inference.model import load_inference_model
from videofocus.models import FocusNet
from videofocus.policy.focusnet import PolicyFocusNet
from videofocus.policy.heuristics import GlimpsePolicy, create_policy
from videofocus.quickstart.report import (
    label_validation,
    report_markdown,
    summary_text,
    write_report,
    write_val_manifest,
)
from videofocus.train.pipeline import run_stage, run_stages, stage_config
from videofocus.train.variants import (
    HEURISTICS,
    MAIN_STAGES,
    share_stages,
    train_seconds,
    with_overrides,
)
from videofocus.viz.command import render_glimpses
from videofocus.viz.tradeoff import plot_tradeoff

__all__ = [
    "DEFAULT_CONFIG",
    "NAMES",
    "quickstart_config",
    "run_quickstart",
]

#: The built-in config the quickstart runs by default.
DEFAULT_CONFIG = "synthetic_tiny"

#: The quick protocol's shortcuts, to keep the quickstart short on 2 CPU cores (``bench policy``
#: trains everything in full): the glance-only baseline trains for at most 4 epochs (it stays
#: at chance however long it trains; docs/benchmarks.md), the differentiable policy for at most 6
#: (it does not learn to move its centres on this benchmark either way), and the plain-PPO
#: policy for half the recurrent policy's timesteps.
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

FINE_TUNED, WARMUP_NET, OWN = "fine-tuned", "warm-up network", "own checkpoint"

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
    """The tiny config (or ``config``) with its data and runs redirected under ``out``."""
    cfg = load_config(config or DEFAULT_CONFIG, overrides)
    return replace(
        cfg,
        data=replace(cfg.data, root=str(out / "data")),
        train=replace(cfg.train, out_dir=str(out / "runs")),
    )


# -------------------------------------------------------------------------------------- rows


def _row(name: str, protocol: str, ev: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": protocol,
        "accuracy": ev["top1"],
        "gmacs_per_video": ev["gmacs_per_video"],
        "videos_per_s": ev["videos_per_s"],
        **extra,
    }


def _glimpse_row(
    name: str, protocol: str, ev: dict[str, Any], warmup_net_accuracy: float, **extra: Any
) -> dict[str, Any]:
    return _row(
        name,
        protocol,
        ev,
        option=dominant_option(ev),
        accuracy_warmup_net=warmup_net_accuracy,
        target_coverage=ev["target_coverage"],
        skip_rate=ev["skip_rate"],
        **extra,
    )


class _Evaluator:
    """Evaluates glimpse policies on the shared warm-up network of the run."""

    def __init__(self, cfg: Config, tracks: dict[str, TargetTrack] | None) -> None:
        self.cfg, self.tracks = cfg, tracks
        self.warmup_dir = Path(cfg.train.out_dir) / "warmup" / "final"
        self.net, _ = load_focusnet(cfg, self.warmup_dir)

    def model(self, model: FocusNet, cfg: Config | None = None) -> dict[str, Any]:
        """Metrics of a model acting with its own policy."""
        return evaluate_glimpse_model(cfg or self.cfg, model, self.tracks)

    def on_warmup(self, policy: GlimpsePolicy, cfg: Config | None = None) -> dict[str, Any]:
        """Metrics of ``policy``'s glimpses read by the warm-up network."""
        return self.model(PolicyFocusNet(self.net, policy, train_local=False), cfg)


def _recurrent_ppo_row(ev: _Evaluator) -> dict[str, Any]:
    run = Path(ev.cfg.train.out_dir)
    finetune, policy_dir = run / "finetune" / "final", run / "policy" / "final"
    model = load_model(finetune, ev.cfg).net
    shared = ev.on_warmup(load_learned_policy(ev.cfg, policy_dir))
    return _glimpse_row(
        "recurrent_ppo",
        FINE_TUNED,
        ev.model(model),
        shared["top1"],
        train_seconds=train_seconds(policy_dir, finetune),
        checkpoint=str(finetune),
    )


def _differentiable_config(cfg: Config, option: int, max_epochs: int | None) -> Config:
    train = replace(cfg.train, differentiable_option=option)
    if max_epochs is not None:
        epochs = min(max_epochs, stage_config(cfg, "differentiable").train.epochs)
        train = replace(train, epochs=epochs, finetune_epochs=epochs)
    return replace(cfg, train=train)


def _differentiable_row(ev: _Evaluator, final_dir: Path) -> dict[str, Any]:
    # evaluate at the option the checkpoint was trained with, as bench policy does
    trained = load_checkpoint(final_dir, load_trainer=False).meta.config["train"]
    cfg = _differentiable_config(ev.cfg, trained["differentiable_option"], None)
    model = load_model(final_dir, cfg).net
    own = ev.model(model, cfg)
    snapped = ev.on_warmup(model.policy)  # grid-snapped centres, roi_align crops
    return _glimpse_row(
        "differentiable",
        FINE_TUNED,
        own,
        snapped["top1"],
        epochs=trained["epochs"],
        train_seconds=train_seconds(final_dir),
        checkpoint=str(final_dir),
    )


# ------------------------------------------------------------------------------------- the job


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

    :param out: output folder; data, runs and reports go under it.
    :param config: the config to run (default :data:`DEFAULT_CONFIG`).
    :param overrides: dotted config overrides.
    :param resume: reuse the stages already finished in ``out`` (False: retrain them all).
    :param differentiable_epochs: most epochs of the differentiable policy's stage; None: as
        long as the fine-tune, as ``bench policy`` trains it.
    :param ppo_timesteps_share: the plain-PPO policy's timesteps, as a share of the config's.
    :param progress: show progress bars.
    :param log: where progress lines go (default: stderr).
    :returns: the rows of ``report.json``, in :data:`NAMES` order.
    """
    start = time.perf_counter()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = quickstart_config(config, out, list(overrides or []))
    runs = Path(cfg.train.out_dir)
    ensure_dataset(cfg.data, workers=os.cpu_count() or 1, progress=progress)
    targets = Path(cfg.data.root) / "targets.jsonl"
    tracks = read_targets(targets) if targets.is_file() else None

    glance_epochs = min(cfg.train.epochs, QUICK_GLANCE_EPOCHS)
    quick_glance = replace(cfg, train=replace(cfg.train, epochs=glance_epochs))
    stages = {"glance_only": run_stage(quick_glance, "glance_only", resume, progress)}
    main_stages = [s for s in MAIN_STAGES if s != "glance_only"]
    stages.update((r.stage, r) for r in run_stages(cfg, main_stages, resume, progress))
    ev = _Evaluator(cfg, tracks)
    rows = {"recurrent_ppo": _recurrent_ppo_row(ev)}
    option = rows["recurrent_ppo"]["option"]
    say(
        f"recurrent_ppo glimpses with option {option} most: the heuristics and the "
        "differentiable policy use it too"
    )
    diff_cfg = _differentiable_config(cfg, option, differentiable_epochs)
    diff_dir = run_stage(diff_cfg, "differentiable", resume, progress).final_dir
    ppo_run = runs / "variants" / "ppo"
    share_stages(runs, ppo_run)
    steps = max(1, int(cfg.policy.total_timesteps * ppo_timesteps_share))
    ppo_cfg = with_overrides(cfg, ["policy.algo=ppo", f"policy.total_timesteps={steps}"], ppo_run)
    ppo_dir = run_stage(ppo_cfg, "policy", resume, progress).final_dir
    say(f"training done after {time.perf_counter() - start:.0f} s; evaluating")

    with tqdm(total=len(NAMES) - 1, desc="evaluate", unit="method", disable=not progress) as bar:
        for name in ("dense", "glance_only"):
            final = stages[name].final_dir
            rows[name] = _row(
                name,
                OWN,
                evaluate_checkpoint(cfg, final),
                train_seconds=train_seconds(final),
                checkpoint=str(final),
            )
            bar.update()
        for heuristic in HEURISTICS:
            result = ev.on_warmup(
                create_policy(heuristic, ev.net.options, ev.net.grid, option=option)
            )
            rows[heuristic] = _glimpse_row(
                heuristic, WARMUP_NET, result, result["top1"], train_seconds=0.0
            )
            bar.update()
        own = evaluate_checkpoint(cfg, ev.warmup_dir)["top1"]
        rows["random"]["accuracy_warmup_own_glimpses"] = own
        rows["differentiable"] = _differentiable_row(ev, diff_dir)
        bar.update()
        result = ev.on_warmup(load_learned_policy(ppo_cfg, ppo_dir), ppo_cfg)
        rows["ppo"] = _glimpse_row(
            "ppo",
            WARMUP_NET,
            result,
            result["top1"],
            train_seconds=train_seconds(ppo_dir),
            checkpoint=str(ppo_dir),
        )
        bar.update()
    report = [rows[name] for name in NAMES]

    manifest = out / "val_videos.jsonl"
    videos = write_val_manifest(cfg, manifest)
    finetune = stages["finetune"].final_dir
    _, labels_line = label_validation(cfg, out, manifest, finetune, progress)
    gif = out / "glimpses.gif"
    render_glimpses(load_inference_model(finetune), videos[0], gif)
    plot = plot_tradeoff(
        report, out / "tradeoff.png", title=f"videofocus quickstart: {cfg.name}, validation"
    )
    files = [out / "report.json", out / "report.md", plot, gif, out / "labels.jsonl", manifest]
    seconds = time.perf_counter() - start
    epochs = rows["differentiable"]["epochs"]
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
