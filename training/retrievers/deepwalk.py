"""DeepWalk: skip-gram over random walks on the graph of consecutive liked movies (Perozzi et al., 2014)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.retrievers import RetrievalSplit, TrainedRetriever
from training.retrievers.skipgram import SkipGramParams, build_retriever, index_sequences, train_movie_vectors


@dataclass(frozen=True)
class Params(SkipGramParams):
    walks_per_movie: int = 5
    walk_length: int = 10


def generate_random_walks(sequences: list[list[int]], vocabulary_size: int, params: Params,
                          rng) -> list[list[int]]:
    """DeepWalk's corpus: random walks over the graph of consecutive positive ratings, steps weighted by how often
    each transition occurs; walks start at every movie with an outgoing edge, `walks_per_movie` times."""
    edges = pd.DataFrame(np.concatenate([np.stack([np.asarray(s[:-1]), np.asarray(s[1:])], axis=1)
                                         for s in sequences if len(s) > 1]), columns=["source", "target"])
    weighted = edges.groupby(["source", "target"]).size().rename("weight").reset_index()
    neighbours = {source: (group["target"].to_numpy(), (group["weight"] / group["weight"].sum()).to_numpy())
                  for source, group in weighted.groupby("source")}
    walks = []
    for start in np.repeat(np.array(sorted(neighbours)), params.walks_per_movie):
        walk = [int(start)]
        while len(walk) < params.walk_length and walk[-1] in neighbours:
            targets, probabilities = neighbours[walk[-1]]
            walk.append(int(rng.choice(targets, p=probabilities)))
        walks.append(walk)
    return walks


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    rng = np.random.default_rng(params.seed)
    walks = generate_random_walks(index_sequences(split), len(split.index), params, rng)
    vectors, losses = train_movie_vectors(walks, len(split.index), params, rng, verbose)
    return TrainedRetriever(build_retriever(split, vectors, params), losses=tuple(losses))
