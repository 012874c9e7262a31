with

source as (
    select * from {{ source('movielens', 'tags') }}
),

renamed as (
    select
        cast(userId as integer) as user_id,
        cast(movieId as integer) as movie_id,
        tag,
        cast({{ adapter.quote('timestamp') }} as bigint) as tagged_at
    from source
)

select * from renamed
