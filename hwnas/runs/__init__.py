"""Runs: what every training or search run stands on.

`run` (the shared run loop), `rundir` / `outdir` (run and output folders), `checkpoint`,
`prefetch`, `compute` (device, threads, precision), `distributed` (torchrun), `training`
(train a derived network), `evaluation` (score it), `executors` (local loop or Ray for
sweeps), `io` (durable writes) and `rows` (CSV rows). Imports the contracts,
`hwnas.tables.cost` and `hwnas.deploy.modelfile`; `training` also the search's schedule,
BN recalibration and setup (fine-tuning continues a search run).
"""
