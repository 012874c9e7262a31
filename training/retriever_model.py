"""The registered retriever `eaglerec-retriever` as an MLflow model, logged from code so that it loads with mlflow,
numpy, pandas and pyarrow only (no TensorFlow, no EagleRec import).

Its artifacts are the two tables Feast serves, `movie_embeddings` and `user_embeddings`; the service may read them
directly. `predict` takes a frame with `user_id` and returns each user's top `k` movies by cosine similarity plus
`popularity_weight` (model config) times the movie's `popularity_prior`, with the movies listed in an optional
`exclude` column (e.g. already rated) left out. Users without a vector get []."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd


class EmbeddingRetriever(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        movies = pd.read_parquet(context.artifacts["movie_embeddings"])
        users = pd.read_parquet(context.artifacts["user_embeddings"])
        self.movie_ids = movies["movie_id"].to_numpy()
        self.movie_vectors = normalise(np.stack(movies["movie_embedding"].to_list()))
        self.prior = context.model_config["popularity_weight"] * movies["popularity_prior"].to_numpy()
        self.user_vectors = dict(zip(users["user_id"].astype(int), users["user_embedding"], strict=True))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        excluded = model_input["exclude"] if "exclude" in model_input else [()] * len(model_input)
        results = []
        for user_id, exclude in zip(model_input["user_id"].astype(int), excluded, strict=True):
            if user_id not in self.user_vectors:
                results.append([])
                continue
            scores = self.movie_vectors @ normalise(np.asarray(self.user_vectors[user_id], dtype=np.float32))
            scores = scores + self.prior
            scores[np.isin(self.movie_ids, list(exclude if exclude is not None else ()))] = -np.inf
            top = np.argsort(-scores)[:k]
            results.append(self.movie_ids[top[np.isfinite(scores[top])]].tolist())
        return pd.DataFrame({"user_id": model_input["user_id"].astype(int).to_numpy(), "movie_ids": results})


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


mlflow.models.set_model(EmbeddingRetriever())
