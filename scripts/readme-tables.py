"""Writes the README's generated tables: configuration from the settings model, fields from the event schema."""

import re
from pathlib import Path

from logpipe.config import config_table
from logpipe.events import fields_table

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
for marker, table in (("config-table", config_table()), ("fields-table", fields_table())):
    start, end = f"<!-- {marker}:start -->\n", f"\n<!-- {marker}:end -->"
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _, t=table, a=start, b=end: a + t + b, text,
                  flags=re.S)
readme.write_text(text)
