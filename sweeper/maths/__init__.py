"""Plain numerical helpers shared by the searchers and the laws: Pareto fronts and mixture sampling.
They import neither Ray nor Optuna."""
