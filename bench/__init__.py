"""The benchmarks of `make bench` and the chaos run of `make chaos`; figures go to bench/RESULTS.md.

One module per benchmark (intake, economy, freshness, neighbour, reads, backfill), each
measuring its own baseline in the same run; `stack` starts the processes they need,
`postgres` a throwaway PostgreSQL cluster, `stats` and `report` turn timings into figures.
"""
