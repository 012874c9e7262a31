"""Training: one module per model of the catalogue (rankers/, retrievers/), their two harnesses, evaluation, MLflow
tracking and the champion gate."""
