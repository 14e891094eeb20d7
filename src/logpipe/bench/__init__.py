"""``logpipe bench``: throughput, freshness and the bottleneck of every stage, measured."""
