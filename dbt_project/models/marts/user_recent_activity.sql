{#-
  The state the near-line path updates: each user's last `user_history_size` ratings, most recent first. Every
  user_profiles feature is a function of it (and of the movies), so a new rating event can update both online.
-#}
{%- set history_size = var('user_history_size') -%}

with

ratings as (
    select * from {{ ref('int_ratings_sequenced') }}
),

recent as (
    select * from ratings
    where user_rating_seq > user_rating_total - {{ history_size }}
),

activity as (
    select
        user_id,
        max(rated_at) + 1 as valid_from,
        list(movie_id order by user_rating_seq desc) as recent_movie_ids,
        list(rating order by user_rating_seq desc) as recent_ratings,
        list(rated_at order by user_rating_seq desc) as recent_rated_ats
    from recent
    group by user_id
),

final as (
    select
        user_id,
        valid_from,
        to_timestamp(valid_from) as valid_from_timestamp,
        recent_movie_ids,
        recent_ratings,
        recent_rated_ats
    from activity
)

select * from final
