"""The contracts between the engine and its plugins, and the configs every part reads.

What a search space, a task and a latency backend implement or are handed: `space`
(SearchSpace, ChoiceBlock, Unit, Architecture) with its traced `layout`, `task`, `latency`
(the backend and table contract, re-exported from `latency_backend`, `capabilities` --
what a backend may do beyond measuring units, as typed protocols -- and
`hwnas.tables.latency_table`), `errors`, the pydantic `config` models, and `plugins` /
`catalog` (discovery through entry points). Plugins import only the modules listed in
`tests/test_layout.py` (`CONTRACTS`). Of the rest of the engine they import only the latency
table they re-export (and, when a backend asks for it, the whole-network mode of
`hwnas.tables`), `hwnas.runs.io` (durable writes) and the names a config validates
against (schedules, executors, precisions).
"""
