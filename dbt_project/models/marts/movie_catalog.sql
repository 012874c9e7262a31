{#- Every movie with what the service and the near-line path show or need: title, year, all genres, links. -#}
with

movies as (
    select * from {{ ref('int_movies_parsed') }}
),

links as (
    select * from {{ ref('stg_movielens__links') }}
),

final as (
    select
        movies.movie_id,
        movies.title,
        movies.release_year,
        movies.genres,
        links.imdb_id,
        links.tmdb_id
    from movies
    left join links on movies.movie_id = links.movie_id
)

select * from final
