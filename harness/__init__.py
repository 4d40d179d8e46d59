"""The measuring stick: suites, datasets, baselines, measurement, metrics, results, reports and the CLI."""

__version__ = "0.1.0"
