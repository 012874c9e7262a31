-- A table, not a view like the other staging models: the ratings file is the large one, and its tests and
-- int_ratings_sequenced would each parse the CSV again (six parses of 25M rows at ML-25M size).
{{ config(materialized='table') }}

with

source as (
    select * from {{ source('movielens', 'ratings') }}
),

renamed as (
    select
        cast(userId as integer) as user_id,
        cast(movieId as integer) as movie_id,
        cast(rating as double) as rating,
        cast({{ adapter.quote('timestamp') }} as bigint) as rated_at
    from source
)

select * from renamed
