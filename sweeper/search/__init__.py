"""Search strategies. Each is a `sweeper.search.base.Proposer` (plain Python: Optuna's samplers, the RegMix
Dirichlet sampler, the CARBS-style cost-aware search); `sweeper.search.build` makes the one a study asks
for and hands it to Ray Tune through the one adapter, `sweeper.search.tune.TuneSearcher`."""
