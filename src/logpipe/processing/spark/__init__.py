"""The Spark Structured Streaming engine (needs the `spark` extra: pyspark 4 and Java 17)."""
