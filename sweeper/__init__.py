"""sweeper: run sweeps of small proxy models with Ray Tune, keep every report in Parquet, extrapolate."""

__version__ = "0.1.0"
