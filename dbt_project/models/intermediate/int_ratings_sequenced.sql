with

ratings as (
    select * from {{ ref('int_ratings_combined') }}
),

movies as (
    select movie_id, release_year from {{ ref('int_movies_parsed') }}
),

sequenced as (
    select
        ratings.user_id,
        ratings.movie_id,
        ratings.rating,
        ratings.rated_at,
        ratings.rating >= {{ var('positive_rating_threshold') }} as is_positive,
        movies.release_year,
        -- Ratings in the same second are ordered by movie id, so every per-user order below is total and repeatable.
        row_number() over (partition by ratings.user_id order by ratings.rated_at, ratings.movie_id) as user_rating_seq,
        count(*) over (partition by ratings.user_id) as user_rating_total
    from ratings
    -- Inner join is safe: the raw gate proved every rated movie is in movies.csv.
    inner join movies on ratings.movie_id = movies.movie_id
),

final as (
    select * from sequenced
)

select * from final
