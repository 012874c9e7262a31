-- A table, not a view like the other staging models: the ratings file is the large one, and its tests and
-- int_ratings_sequenced would each parse the CSV again (six parses of 25M rows at ML-25M size).
{{ config(materialized='table') }}

{{ stage_ratings(source('movielens', 'ratings')) }}
