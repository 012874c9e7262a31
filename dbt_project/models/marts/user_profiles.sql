{#-
  User features as of a time: one row per (user, second in which the user rated), valid from the next second,
  computed over the user's last `user_history_size` ratings up to and including that second. An event at time t
  takes the latest row with valid_from <= t, so it sees only ratings strictly before t. Every user also has a
  row from the start of the data set with no history.
-#}
{%- set genres = var('movielens_genres') -%}
{%- set history_size = var('user_history_size') -%}
{%- set recent_positives = 5 -%}

with

ratings as (
    select * from {{ ref('int_ratings_sequenced') }}
),

data_set as (
    select min(rated_at) as started_at from ratings
),

windowed as (
    select
        user_id,
        rated_at,
        user_rating_seq,
        count(*) over recent as user_rating_count,
        avg(rating) over recent as user_avg_rating,
        stddev_samp(rating) over recent as user_rating_stddev,
        avg(release_year) over recent as user_avg_release_year,
        stddev_samp(release_year) over recent as user_release_year_stddev,
        {%- for genre in genres %}
        sum(case when is_positive and list_contains(genres, '{{ genre }}') then 1 else 0 end) over recent
            as positive_genre_count_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
    from ratings
    window recent as (
        partition by user_id order by user_rating_seq
        rows between {{ history_size - 1 }} preceding and current row
    )
),

after_each_second as (
    -- Ratings given in the same second become visible together: keep the state after the last of them.
    select * from windowed
    qualify user_rating_seq = max(user_rating_seq) over (partition by user_id, rated_at)
),

positives_chained as (
    -- Each positive rating with the positives before it, most recent first.
    select
        user_id,
        user_rating_seq,
        {%- for back in range(recent_positives) %}
        lag(movie_id, {{ back }}) over by_time as positive_movie_{{ back + 1 }},
        lag(user_rating_seq, {{ back }}) over by_time as positive_seq_{{ back + 1 }}{{ "," if not loop.last }}
        {%- endfor %}
    from ratings
    where is_positive
    window by_time as (partition by user_id order by user_rating_seq)
),

profiles as (
    select
        state.user_id,
        state.rated_at + 1 as valid_from,
        state.rated_at as user_last_rated_at,
        state.user_rating_count,
        state.user_avg_rating,
        state.user_rating_stddev,
        state.user_avg_release_year,
        state.user_release_year_stddev,
        -- Only positives inside the same window of recent ratings count, as for every other user feature.
        list_filter([
            {%- for rank in range(1, recent_positives + 1) %}
            case when chain.positive_seq_{{ rank }} > state.user_rating_seq - {{ history_size }}
                then chain.positive_movie_{{ rank }} end{{ "," if not loop.last }}
            {%- endfor %}
        ], lambda movie_id: movie_id is not null) as user_rated_movie_ids,
        -- Genres by positive count, most first; ties by genre name.
        list_transform(
            list_filter(
                list_sort([
                    {%- for genre in genres %}
                    {'negated_count': -state.positive_genre_count_{{ loop.index }}, 'genre': '{{ genre }}'}{{ "," if not loop.last }}
                    {%- endfor %}
                ]),
                lambda ranked: ranked.negated_count < 0
            ),
            lambda ranked: ranked.genre
        )[1:5] as user_genres
    from after_each_second as state
    asof left join positives_chained as chain
        on state.user_id = chain.user_id
        and state.user_rating_seq >= chain.user_rating_seq
),

no_history as (
    select
        users.user_id,
        data_set.started_at as valid_from,
        cast(null as bigint) as user_last_rated_at,
        cast(0 as bigint) as user_rating_count,
        cast(null as double) as user_avg_rating,
        cast(null as double) as user_rating_stddev,
        cast(null as double) as user_avg_release_year,
        cast(null as double) as user_release_year_stddev,
        cast([] as integer[]) as user_rated_movie_ids,
        cast([] as varchar[]) as user_genres
    from (select distinct user_id from ratings) as users
    cross join data_set
),

final as (
    select
        *,
        {%- for rank in range(1, recent_positives + 1) %}
        user_rated_movie_ids[{{ rank }}] as user_rated_movie_{{ rank }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        user_genres[{{ rank }}] as user_genre_{{ rank }},
        {%- endfor %}
        -- Feast reads time as a timestamp.
        to_timestamp(valid_from) as valid_from_timestamp
    from (
        select * from profiles
        union all
        select * from no_history
    )
)

select * from final
