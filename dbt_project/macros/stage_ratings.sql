{#- The ratings.csv columns, typed and named as the project names them: the release's ratings and the site's live ones
    (taken from the recommender's event log in the same columns) are staged by this one definition. -#}
{% macro stage_ratings(source_relation) %}
with

source as (
    select * from {{ source_relation }}
),

renamed as (
    select
        cast(userId as integer) as user_id,
        cast(movieId as integer) as movie_id,
        cast(rating as double) as rating,
        cast({{ adapter.quote('timestamp') }} as bigint) as rated_at
    from source
)

select * from renamed
{% endmacro %}
