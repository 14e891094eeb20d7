"""Sources besides ``POST /v1/logs``: OpenTelemetry (OTLP/HTTP), syslog, and log files. Each has the same
shape: ``config.py`` (its settings model's part), the source itself, and its parsing into columns
(``transport.intake.Records``), which it hands to the pipeline's ``Intake`` like every other source."""
