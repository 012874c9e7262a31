{#-
  Every rating event with the user and movie features as they stood just before it: the point-in-time join
  of rating_events with user_profiles and movie_profiles (latest row with valid_from <= rated_at).
  The fast path for training sets; Feast's historical retrieval gives the same rows.
  A flat table, as rankers read it: the user's last liked movies and top genres come as user_liked_movie_1..5 and
  user_genre_1..5; the same values as lists (user_liked_movie_ids, user_genres) stay in user_profiles. Carrying
  both through the point-in-time join cost a third of this model's time at 25M ratings.
-#}
with

events as (
    select * from {{ ref('rating_events') }}
),

user_profiles as (
    select * from {{ ref('user_profiles') }}
),

movie_profiles as (
    select * from {{ ref('movie_profiles') }}
),

joined as (
    select
        events.*,
        user_profiles.* exclude (user_id, valid_from, valid_from_timestamp, user_liked_movie_ids, user_genres),
        movie_profiles.* exclude (movie_id, valid_from, valid_from_timestamp)
    from events
    asof left join user_profiles
        on events.user_id = user_profiles.user_id
        and events.rated_at >= user_profiles.valid_from
    asof left join movie_profiles
        on events.movie_id = movie_profiles.movie_id
        and events.rated_at >= movie_profiles.valid_from
),

final as (
    select * from joined
)

select * from final
