"""Benchmarks: control-plane overhead, throughput scaling, engine speed and memory, side by side
with the Celery + Redis design of the IndexTTS service API (v1). ``make bench`` runs
:mod:`bench.run`; see bench/README.md. Benchmarks print figures and assert nothing."""
