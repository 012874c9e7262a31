with

movies as (
    select * from {{ ref('stg_movielens__movies') }}
),

parsed as (
    select
        movie_id,
        title,
        -- The year is the "(yyyy)" ending the title; a title without one gets null (SparrowRecSys used 1990).
        cast(nullif(regexp_extract(trim(title), {{ regex('\((\d{4})\)$') }}, 1), '') as integer) as release_year,
        {{ split_on('genres_text', '|') }} as genres
    from movies
),

final as (
    select
        movie_id,
        title,
        release_year,
        genres,
        {{ list_at('genres', 1) }} as movie_genre_1,
        {{ list_at('genres', 2) }} as movie_genre_2,
        {{ list_at('genres', 3) }} as movie_genre_3
    from parsed
)

select * from final
