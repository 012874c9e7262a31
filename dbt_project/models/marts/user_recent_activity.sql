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
        {{ ordered_list('movie_id', ['user_rating_seq'], descending=true) }} as recent_movie_ids,
        {{ ordered_list('rating', ['user_rating_seq'], descending=true) }} as recent_ratings,
        {{ ordered_list('rated_at', ['user_rating_seq'], descending=true) }} as recent_rated_ats
    from recent
    group by user_id
),

final as (
    select
        user_id,
        valid_from,
        {{ epoch_to_timestamp('valid_from') }} as valid_from_timestamp,
        recent_movie_ids,
        recent_ratings,
        recent_rated_ats
    from activity
)

select * from final
