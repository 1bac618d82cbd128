//! Benchmark tools for ferrovs: not built yet, see README.md.
