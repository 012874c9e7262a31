with

source as (
    select * from {{ source('movielens', 'links') }}
),

renamed as (
    select
        cast(movieId as integer) as movie_id,
        -- Kept as text: IMDb ids are zero-padded ("0114709") and the padding is part of the id.
        nullif(imdbId, '') as imdb_id,
        cast(nullif(tmdbId, '') as integer) as tmdb_id
    from source
)

select * from renamed
