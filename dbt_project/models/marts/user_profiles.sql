{#-
  User features as of a time: one row per (user, second in which the user rated), valid from the next second,
  computed over the user's last `user_history_size` ratings up to and including that second. An event at time t
  takes the latest row with valid_from <= t, so it sees only ratings strictly before t. Every user also has a
  row from the start of the data set with no history.

  int_user_states holds each user's state before each second they rated in and after their last rating (the
  closing rows): the state before a second is the one after the user's previous second, so it is valid from just
  after that one; before the user's first second, from the start of the data set.
-#}
with

states as (
    select * from {{ ref('int_user_states') }}
),

data_set as (
    -- The closing rows come after every rating: the earliest rated_at is the data set's first rating. (Its own scan:
    -- a second reader of the states CTE would hold all of it in memory until the minimum is known.)
    select min(rated_at) as started_at from {{ ref('int_user_states') }}
),

profiles as (
    select
        states.user_id,
        coalesce(states.user_last_rated_at + 1, data_set.started_at) as valid_from,
        states.user_last_rated_at,
        states.user_rating_count,
        states.user_avg_rating,
        states.user_rating_stddev,
        states.user_avg_release_year,
        states.user_release_year_stddev,
        -- The lists of the flat columns: their non-null values come first, so a slice drops the nulls.
        {%- for name, prefix in [("user_liked_movie_ids", "user_liked_movie_"), ("user_genres", "user_genre_")] %}
        {%- set items = [] %}{% set present = [] %}
        {%- for rank in range(1, 6) %}{% do items.append("states." ~ prefix ~ rank) %}{% do present.append("(states." ~ prefix ~ rank ~ " is not null)::int") %}{% endfor %}
        {{ list_head(items, present | join(' + ')) }} as {{ name }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        states.user_liked_movie_{{ rank }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        states.user_genre_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from states
    cross join data_set
),

final as (
    select
        *,
        -- Feast reads time as a timestamp.
        {{ epoch_to_timestamp('valid_from') }} as valid_from_timestamp
    from profiles
)

select * from final
