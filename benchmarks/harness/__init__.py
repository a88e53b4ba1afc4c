"""The parts of benchmarks/run.py: cases and servers, processes, CPU accounting, wrk, tables."""
