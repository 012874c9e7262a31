"""A registered retriever as MLflow loads it (models-from-code: MLflow keeps this file with every retriever version
and runs it on load; nothing imports it). The model config names the retriever type of the contract
(eaglerec/contracts/retrieval.py), the artifacts are that type's tables.

`unwrap_python_model().retriever` is the retriever itself (what the service calls); `predict` answers a frame of
users (`user_id`, optional `liked_movie_ids` most recent first, optional `exclude`) with each one's top `k` movies."""

from __future__ import annotations

import math

import mlflow
import pandas as pd

from eaglerec.contracts.retrieval import UserState, load_retriever


class RegisteredRetriever(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.retriever = load_retriever(context.artifacts, context.model_config)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        answers = []
        for row in model_input.to_dict("records"):
            user_id = row.get("user_id")
            known = user_id is not None and not (isinstance(user_id, float) and math.isnan(user_id))
            user = UserState(int(user_id) if known else None, tuple(int(m) for m in listed(row, "liked_movie_ids")))
            found = self.retriever.retrieve(user, k, [int(m) for m in listed(row, "exclude")])
            answers.append({"user_id": user.user_id, "movie_ids": found.movie_ids.tolist(),
                            "scores": found.scores.tolist()})
        return pd.DataFrame(answers, columns=["user_id", "movie_ids", "scores"])


def listed(row: dict, column: str) -> list:
    value = row.get(column)
    return [] if value is None or (isinstance(value, float) and math.isnan(value)) else list(value)


mlflow.models.set_model(RegisteredRetriever())
