{#-
  Movie features as of a time: one row per (movie, second in which it was rated), valid from the next second,
  with rating statistics over all its ratings up to and including that second; plus a row from the start of
  the data set with no ratings, for every movie in movies.csv. An event at time t takes the latest row with
  valid_from <= t, so it sees only ratings strictly before t.
-#}
with

ratings as (
    select movie_id, user_id, rating, rated_at from {{ ref('int_ratings_sequenced') }}
),

movies as (
    select * from {{ ref('int_movies_parsed') }}
),

data_set as (
    select min(rated_at) as started_at from ratings
),

cumulative as (
    select
        movie_id,
        rated_at,
        -- A range frame takes every rating of the same second together.
        count(*) over up_to_now as movie_rating_count,
        avg(rating) over up_to_now as movie_avg_rating,
        stddev_samp(rating) over up_to_now as movie_rating_stddev
    from ratings
    window up_to_now as (partition by movie_id order by rated_at range between unbounded preceding and current row)
    qualify row_number() over (partition by movie_id, rated_at order by user_id) = 1
),

statistics as (
    select
        movie_id,
        rated_at + 1 as valid_from,
        rated_at as movie_last_rated_at,
        movie_rating_count,
        movie_avg_rating,
        movie_rating_stddev
    from cumulative
    union all
    select
        movies.movie_id,
        data_set.started_at as valid_from,
        cast(null as bigint) as movie_last_rated_at,
        cast(0 as bigint) as movie_rating_count,
        cast(null as double) as movie_avg_rating,
        cast(null as double) as movie_rating_stddev
    from movies
    cross join data_set
),

final as (
    select
        statistics.movie_id,
        statistics.valid_from,
        -- Feast reads time as a timestamp.
        {{ epoch_to_timestamp('statistics.valid_from') }} as valid_from_timestamp,
        statistics.movie_last_rated_at,
        movies.release_year,
        movies.movie_genre_1,
        movies.movie_genre_2,
        movies.movie_genre_3,
        statistics.movie_rating_count,
        statistics.movie_avg_rating,
        statistics.movie_rating_stddev
    from statistics
    inner join movies on statistics.movie_id = movies.movie_id
)

select * from final
