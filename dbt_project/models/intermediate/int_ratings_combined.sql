-- The release's ratings and the site's, one rating per (user, movie): of a pair in both, the later one (the site's
-- on a tie), as MovieLens keeps a user's last rating of a movie. Anti-joins, not a window over every rating: the
-- site's ratings are few next to a 25M release.
with

release as (
    select * from {{ ref('stg_movielens__ratings') }}
),

live as (
    select * from {{ ref('stg_live__ratings') }}
),

kept_release as (
    select release.*
    from release
    anti join live
        on release.user_id = live.user_id and release.movie_id = live.movie_id and live.rated_at >= release.rated_at
),

kept_live as (
    select live.*
    from live
    anti join release
        on release.user_id = live.user_id and release.movie_id = live.movie_id and release.rated_at > live.rated_at
),

combined as (
    select *, 'release' as origin from kept_release
    union all
    select *, 'live' as origin from kept_live
)

select * from combined
