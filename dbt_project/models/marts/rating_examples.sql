{#-
  Every rating event with the user and movie features as they stood just before it: rating_events with the user's
  state before the rating (int_user_states: user_profiles' features, over ratings strictly before its second) and
  the movie's (the latest movie_profiles row with valid_from <= rated_at, a point-in-time join).
  The fast path for training sets; Feast's historical retrieval gives the same rows.
  A flat table, as rankers read it: the user's last liked movies and top genres come as user_liked_movie_1..5 and
  user_genre_1..5 (user_profiles has them as lists too).
  At 25M ratings the user side was a point-in-time join of 25M wide rows (148 s of a 400 s build, spilling 12 GB):
  here the point-in-time join carries the movie statistics only, and the wide user states meet the events in one
  equality join on (user_id, rated_at) that streams them.
-#}
{#- movie_profiles' columns in its order; the statistics change over time, the others are the movie's own. -#}
{%- set movie_columns = ['movie_last_rated_at', 'release_year', 'movie_genre_1', 'movie_genre_2', 'movie_genre_3',
                         'movie_rating_count', 'movie_avg_rating', 'movie_rating_stddev'] -%}
{%- set movie_statistics = ['movie_last_rated_at', 'movie_rating_count', 'movie_avg_rating', 'movie_rating_stddev'] %}

with

events as (
    select * from {{ ref('rating_events') }}
),

movie_profiles as (
    select * from {{ ref('movie_profiles') }}
),

user_states as (
    select * from {{ ref('int_user_states') }}
),

movies as (
    select * from {{ ref('int_movies_parsed') }}
),

events_with_movies as (
    -- Only the statistics ride through the point-in-time join (its rows are sorted whole); the movie's own columns,
    -- as movie_profiles has them, come from the 62k movies at the end.
    select
        events.*,
        {%- for column in movie_statistics %}
        movie_profiles.{{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from events
    {{ asof_left_join('events', 'movie_profiles', 'movie_id', 'rated_at') }}
),

joined as (
    select
        {{ star_except('events_with_movies', movie_statistics) }},
        {{ star_except('user_states', ['user_id', 'rated_at']) }},
        {%- for column in movie_columns %}
        {{ 'events_with_movies' if column in movie_statistics else 'movies' }}.{{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from events_with_movies
    -- Every rating's second has its row in int_user_states (the closing rows come after the user's last rating).
    inner join user_states
        on events_with_movies.user_id = user_states.user_id and events_with_movies.rated_at = user_states.rated_at
    inner join movies on events_with_movies.movie_id = movies.movie_id
),

final as (
    select * from joined
)

select * from final
