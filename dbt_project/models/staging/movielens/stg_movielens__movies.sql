with

source as (
    select * from {{ source('movielens', 'movies') }}
),

renamed as (
    select
        cast(movieId as integer) as movie_id,
        title,
        genres as genres_text
    from source
)

select * from renamed
