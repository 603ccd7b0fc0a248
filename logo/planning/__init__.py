"""Decision-time planning with a trained world model: model-predictive control around a trained policy."""

from logo.planning.mpc import MPCOptions, MPCPlanner, load_planner_model, score_rollouts

__all__ = ["MPCOptions", "MPCPlanner", "load_planner_model", "score_rollouts"]
