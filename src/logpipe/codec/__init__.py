"""The JSON wire format: the schema producers send (``schema``), NDJSON encoding and decoding
(``ndjson``), and the compiled scanner that decodes flat batches (``flat_json``)."""
