"""Benchmarks of the analysis pipeline (``gridworker bench ...``).

Modules: :mod:`.throughput` (orchestration, table, JSON), :mod:`.parts` (the sum-of-parts
ceiling), :mod:`.pipelines` (gridworker, naive and Ultralytics runs), :mod:`.timing`
(PTS-based frame age), :mod:`.cli` (``register(subparsers)``).
"""
