with

source as (
    select * from {{ source('live', 'ratings') }}
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
