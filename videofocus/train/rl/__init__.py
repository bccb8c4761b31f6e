"""The glimpse policy trained with reinforcement learning: the batched episode core, the
gymnasium / stable-baselines3 environments, PPO through SB3 / sb3-contrib and the policy stage."""
