"""Training: embeddings, rankers, baselines, evaluation, MLflow tracking and the champion gate."""
