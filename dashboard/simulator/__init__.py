"""A stand-in for the Mogplex v1 API, served in its own process (``python -m dashboard.simulator``).

It implements the read-side contract (``/work/shared/mogplex-api-contract.md``)
and the two writes a launcher uses, plus a ``/_sim/`` control surface for tests,
benchmarks and the demo scenario. See ``docs/internals.md`` ("The simulator").
"""
