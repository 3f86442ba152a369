"""Batch inference: the newest pushed model over new data, PredictionLogs and Parquet out."""
