"""``spark-submit -m``-style entry: ``python -m logpipe.processing.spark [--source ...]``."""

from logpipe.cli import app

if __name__ == "__main__":
    app(["spark", *__import__("sys").argv[1:]])
