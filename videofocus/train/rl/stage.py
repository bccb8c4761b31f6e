"""Stage 2, the glimpse policy: PPO / recurrent PPO on the frozen warm-up model's episodes.

:func:`run_policy_stage` trains on the training videos (evaluation-mode sampling, so cached
glance and glimpse features stay valid) for ``policy.total_timesteps`` environment steps, exports
the actor to plain torch, plays it deterministically over the validation videos and writes
``<out_dir>/policy/final/``: weights ``policy.*``, ``projection.*`` and a copy of the warm-up
network it acts on (``focusnet.*``, so the folder works alone), and beside it ``sb3_model.zip``
for those who continue training in SB3. The stage folder also holds ``config.yaml``,
``metrics.jsonl`` (one line per rollout) and ``tb/``.

An interrupted policy stage starts again from the beginning (``final/`` is written only at the
end). It runs in one process: under ``torchrun`` the other ranks wait for it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import set_random_seed

from videofocus.artifacts.checkpoint import CheckpointError, save_checkpoint
from videofocus.artifacts.learned_policy import STAGE, learned_policy_meta, load_focusnet
from videofocus.artifacts.meta import checkpoint_meta
from videofocus.config import Config, save_config
from videofocus.data.loaders import build_dataset, ensure_dataset
from videofocus.models import FocusNet
from videofocus.policy.network import GlimpsePolicyNetwork
from videofocus.policy.observation import GlanceProjection
from videofocus.runtime import init_distributed, select_device
from videofocus.train.loop import StageResult, append_json_line
from videofocus.train.rl.clips import ClipSource
from videofocus.train.rl.episodes import EpisodeBatch, build_episode_core
from videofocus.train.rl.vec_env import FocusVecEnv

__all__ = ["EpisodeStatsCallback", "evaluate_episodes", "run_policy_stage"]

SB3_FILE = "sb3_model.zip"


class EpisodeStatsCallback(BaseCallback):
    """Per rollout: mean episode return, ground-truth probability after the last step, cost per
    step and skip rate; logged as ``policy/*`` (TensorBoard) and one JSON line in ``path`` (the
    stage's ``metrics.jsonl``; None: TensorBoard only)."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path
        self._returns: list[float] = []
        self._final_conf: list[float] = []
        self._costs: list[float] = []
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            self._costs.append(info["cost"])
            if "episode" in info:
                self._returns.append(info["episode"]["r"])
                self._final_conf.append(info["confidence"])
        return True

    def _on_rollout_end(self) -> None:
        if not self._costs:
            return
        costs = np.asarray(self._costs)
        stats = {"cost": float(costs.mean()), "skip_rate": float((costs == 0).mean())}
        if self._returns:
            stats["ep_reward"] = float(np.mean(self._returns))
            stats["p_gt_last"] = float(np.mean(self._final_conf))
        for key, value in stats.items():
            self.logger.record(f"policy/{key}", value)
        if self.path is not None:
            record = {
                "timesteps": int(self.num_timesteps),
                "steps_per_s": self.num_timesteps / (time.perf_counter() - self._start),
                **{f"train/{k}": v for k, v in stats.items()},
            }
            append_json_line(self.path, record)
        self._returns, self._final_conf, self._costs = [], [], []


@torch.no_grad()
def evaluate_episodes(
    episodes: EpisodeBatch,
    source: ClipSource,
    network: GlimpsePolicyNetwork,
    batch_size: int,
) -> dict[str, float]:
    """Play ``network`` deterministically over every decodable video of ``source``, once each,
    ``batch_size`` videos together.

    :returns: ``videos``, mean ``ep_reward``, mean ``p_gt_last`` (ground-truth probability after
        the last step), ``top1_proxy`` (share of videos whose ``p_gt_last`` exceeds 0.5, a lower
        bound of top-1), ``cost`` per step and ``skip_rate``.
    """
    device = source.device
    network = network.to(device).eval()
    videos = [i for i in range(len(source)) if source.valid(i)]
    returns, final, costs = [], [], []
    for start in range(0, len(videos), batch_size):
        chunk = videos[start : start + batch_size]
        obs = episodes.start(source.load(chunk))
        state = network.initial_state(len(chunk), device=device)
        total = torch.zeros(len(chunk), device=device)
        result = None
        while episodes.step_index < episodes.num_steps:
            actions, state = network.act(obs["glance"], obs["progress"], state, deterministic=True)
            result = episodes.step(actions)
            obs = result.observation
            total += result.reward
            costs.append(result.cost)
        assert result is not None
        returns.append(total)
        final.append(result.confidence)
    if not videos:
        return {}
    p_last = torch.cat(final).float()
    cost = torch.cat(costs).float()
    return {
        "videos": len(videos),
        "ep_reward": float(torch.cat(returns).mean()),
        "p_gt_last": float(p_last.mean()),
        "top1_proxy": float((p_last > 0.5).float().mean()),
        "cost": float(cost.mean()),
        "skip_rate": float((cost == 0).float().mean()),
    }


def run_policy_stage(cfg: Config, resume: bool = False, progress: bool = True) -> StageResult:
    """Train the glimpse policy on the frozen warm-up model and write ``<out_dir>/policy/final``
    (with ``resume``, return at once when it exists).

    :raises CheckpointError: when ``<out_dir>/warmup/final`` is missing.
    """
    start_time = time.perf_counter()
    out_dir = Path(cfg.train.out_dir)
    stage_dir = out_dir / STAGE
    final_dir = stage_dir / "final"
    if resume and final_dir.is_dir():
        return StageResult.finished(STAGE, final_dir)
    device = select_device(cfg.train.device)
    dist = init_distributed(device)
    if not dist.is_main:  # one PPO run; the other ranks wait for its checkpoint
        torch.distributed.barrier()
        return StageResult.finished(STAGE, final_dir)

    warmup_dir = out_dir / "warmup" / "final"
    if not warmup_dir.is_dir():
        raise CheckpointError(
            f"{warmup_dir}: the policy stage needs the warm-up model; run --stage warmup first"
        )
    # Imported here: it needs sb3-contrib, which label-time users of the engine may not have.
    from videofocus.train.rl.sb3 import TqdmProgressCallback, export_policy, make_ppo

    set_random_seed(cfg.policy.seed)
    net, num_classes = load_focusnet(cfg, warmup_dir, device)
    ensure_dataset(cfg.data, workers=max(1, cfg.data.num_workers), progress=progress)
    stage_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, stage_dir / "config.yaml")
    (stage_dir / "metrics.jsonl").unlink(missing_ok=True)  # a restarted run logs afresh

    train_set = build_dataset(
        cfg.data, "train", train=False, num_classes=num_classes, seed=cfg.train.seed
    )
    env = FocusVecEnv.from_config(cfg, net, train_set)
    projection = env.episodes.projection
    model = make_ppo(cfg, env, tensorboard_log=stage_dir / "tb", device=device)
    callbacks: list[BaseCallback] = [EpisodeStatsCallback(stage_dir / "metrics.jsonl")]
    if progress:
        callbacks.append(TqdmProgressCallback(STAGE))
    learn_start = time.perf_counter()
    model.learn(cfg.policy.total_timesteps, callback=CallbackList(callbacks), tb_log_name="ppo")
    learn_seconds = time.perf_counter() - learn_start
    env.close()

    network = export_policy(model)
    metrics: dict[str, Any] = {
        "timesteps": int(model.num_timesteps),
        "steps_per_s": model.num_timesteps / learn_seconds,
    }
    if model.ep_info_buffer:
        metrics["train/ep_reward"] = float(np.mean([e["r"] for e in model.ep_info_buffer]))
    metrics.update({f"val/{k}": v for k, v in _validate(cfg, net, projection, network).items()})
    append_json_line(stage_dir / "metrics.jsonl", metrics)

    model.save(stage_dir / SB3_FILE)  # before final/: a finished final/ implies the zip exists
    state = {f"policy.{k}": v for k, v in network.state_dict().items()}
    state.update({f"projection.{k}": v for k, v in projection.state_dict().items()})
    # the warm-up network too, so that the folder labels and evaluates without its run's warmup/
    state.update({f"focusnet.{k}": v for k, v in net.state_dict().items()})
    seconds = time.perf_counter() - start_time
    spec = learned_policy_meta(network, projection, algo=cfg.policy.algo)
    meta = checkpoint_meta(cfg, STAGE, num_classes, spec, metrics=metrics, train_seconds=seconds)
    save_checkpoint(final_dir, state, meta)
    if dist.is_distributed:
        torch.distributed.barrier()
    return StageResult(STAGE, final_dir, metrics, seconds)


def _validate(
    cfg: Config, net: FocusNet, projection: GlanceProjection, network: GlimpsePolicyNetwork
) -> dict[str, float]:
    """:func:`evaluate_episodes` over the validation split with the training projection."""
    num_classes = net.aggregator.num_classes
    val_set = build_dataset(cfg.data, "val", train=False, num_classes=num_classes, seed=0)
    if len(val_set) == 0:
        return {}
    policy = cfg.policy
    if policy.cache_dir is not None:  # its own folder: a cache holds one dataset's videos
        cfg = replace(cfg, policy=replace(policy, cache_dir=str(Path(policy.cache_dir) / "val")))
    source, episodes = build_episode_core(cfg, net, val_set, projection)
    return evaluate_episodes(episodes, source, network, cfg.policy.n_envs)
