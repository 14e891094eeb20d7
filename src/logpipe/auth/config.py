from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AuthConfig:
    """Where tokens come from. ``tokens`` holds the ones given in the environment, by role; roles
    with none there or in ``tokens_file`` get tokens generated into ``data_dir`` at first start."""

    enabled: bool = True
    tokens: dict[str, str] = field(default_factory=dict, repr=False)  # role -> token
    tokens_file: Path | None = None
    data_dir: Path = Path("./data")

    @property
    def credentials_file(self) -> Path:
        """The generated tokens, for local clients (the CLI) to find: mode 0600, like Jupyter's runtime file."""
        return self.data_dir / "credentials.json"
