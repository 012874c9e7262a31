{#- The movies each user rated positively, in time order (ties by movie_id): the sentences of item2vec/DeepWalk. -#}
with

positives as (
    select * from {{ ref('rating_events') }}
    where label = 1
),

sequences as (
    select
        user_id,
        {{ ordered_list('movie_id', ['rated_at', 'movie_id']) }} as movie_ids,
        -- Embeddings evaluated on the split must learn from train positives only.
        coalesce({{ ordered_list('movie_id', ['rated_at', 'movie_id'], where="split = 'train'") }},
                 {{ empty_list('integer') }}) as train_movie_ids,
        count(*) as positive_count,
        min(rated_at) as first_rated_at,
        max(rated_at) as last_rated_at
    from positives
    group by user_id
),

final as (
    select * from sequences
)

select * from final
