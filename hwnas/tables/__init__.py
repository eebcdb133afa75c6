"""Latency tables: building them, reading them, predicting from them, and checking them.

`latency_table` (the table and its sidecar), `building` (measure the missing rows),
`target` (one measurement target: space, preset, size, backend, device, precision),
`prediction`, `profiling` / `profile_job` / `fidelity` (whole networks against the
table), `whole_network` / `attribution` / `breakdown` (per-layer profiles attributed to
units), `cost` (parameters and MACs) and `machine_load` (how busy the machine was).
Imports the contracts and `hwnas.deploy` (a unit is timed as it is exported); never the
search or the runs.
"""
