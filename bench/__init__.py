"""Benchmarks (ISSUE 7): control-plane overhead, throughput scaling, engine speed and memory, side by
side with the seed's Celery + Redis design. ``make bench`` runs :mod:`bench.run`; see bench/README.md.
Benchmarks print figures and assert nothing."""
