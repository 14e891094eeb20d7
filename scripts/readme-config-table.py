"""Writes the README's configuration table from the settings model (`logpipe config docs`)."""

import re
from pathlib import Path

from logpipe.config import config_table

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
start, end = "<!-- config-table:start -->\n", "\n<!-- config-table:end -->"
text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: start + config_table() + end, text, flags=re.S)
readme.write_text(text)
