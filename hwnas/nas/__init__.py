"""The architecture search: super-net, objective, schedules, commitment, the bilevel step,
several devices, and the sweeps built on it.

`supernet` (mixed operations over alpha), `objective` (task loss + latency + entropy),
`schedule`, `commitment`, `collapse`, `bilevel` (one weight/alpha step), `devices` /
`combine` (several latency tables in one search), `searching` / `search_setup` /
`search_loop` / `search_outputs` (one search run), `history`, `batchnorm`
(recalibration of a derived network), `sweep` / `sweep_jobs` / `front` / `baselines`
(many runs: trade-off sweeps and the latency-quality front). Imports the contracts,
`hwnas.tables`, `hwnas.runs` and `hwnas.deploy`; `front` also calls `hwnas.api.evaluate`.
(Not `hwnas.search`: that name is the Python API's `search` function.)
"""
