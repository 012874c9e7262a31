"""The contracts between EagleRec's stages, in one place: names and thresholds (`names`), the model inputs
(`features`), the feature encoder logged with every ranker (`encoding`), the model catalogue (`catalogue`,
`models.toml`) and the retriever contract (`retrieval`). Training and serving import these; nothing here imports
another folder of the project."""
