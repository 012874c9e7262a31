{#-
  One labelled example per rating, with the split it belongs to. split_method (a dbt var):
  - per_user_time: each user's ratings in (rated_at, movie_id) order; the last split_test_percent are test,
    the split_validation_percent before them validation, the rest train;
  - global_time: the same percentages over all ratings in (rated_at, user_id, movie_id) order;
  - random: a seeded hash of (split_seed, user_id, movie_id) puts each rating in a bucket 0-99.
  Positions are compared in integers so the cut never depends on floating-point rounding.
-#}
{%- set method = var('split_method') -%}
{%- set test_percent = var('split_test_percent') | int -%}
{%- set validation_percent = var('split_validation_percent') | int -%}
{%- set train_percent = 100 - test_percent - validation_percent -%}

with

ratings as (
    select * from {{ ref('int_ratings_sequenced') }}
),

placed as (
    select
        user_id,
        movie_id,
        rating,
        rated_at,
        {%- if method == 'per_user_time' %}
        user_rating_seq - 1 as split_position,
        user_rating_total as split_population
        {%- elif method == 'global_time' %}
        row_number() over (order by rated_at, user_id, movie_id) - 1 as split_position,
        count(*) over () as split_population
        {%- elif method == 'random' %}
        -- md5 rather than hash(): its value is fixed by the standard, so any engine reproduces the split.
        {{ hex_to_integer("left(md5(concat('" ~ var('split_seed') ~ "', ':', user_id, ':', movie_id)), 8)") }} % 100
            as split_position,
        100 as split_population
        {%- else %}
        {{ exceptions.raise_compiler_error("var split_method must be per_user_time, global_time or random, got '" ~ method ~ "'") }}
        {%- endif %}
    from ratings
),

final as (
    select
        user_id,
        movie_id,
        rating,
        rated_at,
        cast(rating >= {{ var('positive_rating_threshold') }} as integer) as label,
        case
            when split_position * 100 >= ({{ train_percent + validation_percent }}) * split_population then 'test'
            when split_position * 100 >= {{ train_percent }} * split_population then 'validation'
            else 'train'
        end as split
    from placed
)

select * from final
