"""The OTLP/HTTP logs receiver: ``POST /v1/logs`` on the OTLP port, protobuf or JSON, plain or gzip."""
