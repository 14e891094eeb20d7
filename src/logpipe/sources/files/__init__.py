"""The file source: log files on disk, followed as they grow and rotate, with checkpoints."""
