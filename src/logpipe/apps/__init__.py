"""The processes logpipe runs, each composed from the stages: ``up`` (everything in one process),
``process`` (the Kafka processor and its workers) and ``spark`` (the Spark engine). Settings are read
here, and only here below the CLI; the stages take their plain config objects."""
