{#-
  User features as of a time: one row per (user, second in which the user rated), valid from the next second,
  computed over the user's last `user_history_size` ratings up to and including that second. An event at time t
  takes the latest row with valid_from <= t, so it sees only ratings strictly before t. Every user also has a
  row from the start of the data set with no history.

  Built for 25M ratings in one sort: every window below shares one ordering (newest first), whose frame
  "current row and the history_size - 1 older ones" is the user's window of recent ratings.
  - Means and standard deviations come from integer sums (half stars, years), exact, so they do not drift.
  - The 20 per-genre counts of positive ratings travel as 3 packed integers (7 bits per genre, at most 9
    genres per integer): 3 window sums instead of 20. A count never exceeds history_size <= 127, so the
    packed fields never carry into each other.
  - The top 5 genres and the last 5 liked movies are scalar columns first; the list columns are built from them.
  At 25M ratings this model went from 155 s to 46 s (same rows, compared value by value).
-#}
{%- set genres = var('movielens_genres') | sort -%}
{%- set history_size = var('user_history_size') | int -%}
{%- set liked_movie_count = 5 -%}
{%- set genre_bits = 7 -%}
{%- set genres_per_integer = 9 -%}
{%- set packs = genres | batch(genres_per_integer) | list -%}
{%- if history_size >= 2 ** genre_bits -%}
{{ exceptions.raise_compiler_error("user_profiles packs genre counts in " ~ genre_bits ~ " bits: var user_history_size must be below " ~ 2 ** genre_bits) }}
{%- endif -%}
{%- if genres | length > 32 -%}
{{ exceptions.raise_compiler_error("user_profiles names a genre by 5 bits of its sort key: at most 32 genres in var movielens_genres") }}
{%- endif %}

with

ratings as (
    select * from {{ ref('int_ratings_sequenced') }}
),

movie_genre_bits as (
    -- Per movie, 1 << (7 * slot) for each of its genres, in the integer of the genre's pack.
    select
        movie_id,
        {%- for pack in packs %}
        {%- set pack_index = loop.index %}
        {% for genre in pack -%}
        case when {{ list_has('genres', "'" ~ genre ~ "'") }} then {{ 2 ** (genre_bits * loop.index0) }} else 0 end
        {%- if not loop.last %} + {% endif %}
        {%- endfor %} as genre_bits_{{ pack_index }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('int_movies_parsed') }}
),

data_set as (
    select min(rated_at) as started_at from ratings
),

windowed as (
    select
        ratings.user_id,
        ratings.rated_at,
        -- The next rating (in time) of the user; the last rating of a second is where its state is complete.
        -- (lag takes no frame: its own window, with recent's partition and order, so the same sort.)
        lag(ratings.rated_at) over (partition by ratings.user_id order by ratings.user_rating_seq desc) as next_rated_at,
        least(ratings.user_rating_seq, {{ history_size }}) as user_rating_count,
        sum(cast(ratings.rating * 2 as bigint)) over recent as half_star_sum,
        sum(cast(ratings.rating * 2 as bigint) * cast(ratings.rating * 2 as bigint)) over recent as half_star_square_sum,
        count(ratings.release_year) over recent as year_count,
        sum(cast(ratings.release_year as bigint)) over recent as year_sum,
        sum(cast(ratings.release_year as bigint) * ratings.release_year) over recent as year_square_sum,
        {%- for pack in packs %}
        cast(sum(case when ratings.is_positive then bits.genre_bits_{{ loop.index }} else 0 end) over recent as bigint)
            as positive_genre_counts_{{ loop.index }},
        {%- endfor %}
        {%- for rank in range(1, liked_movie_count + 1) %}
        {{ nth_non_null('case when ratings.is_positive then ratings.movie_id end', rank) }} over recent
            as user_liked_movie_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from ratings
    inner join movie_genre_bits as bits on ratings.movie_id = bits.movie_id
    window recent as (
        partition by ratings.user_id order by ratings.user_rating_seq desc
        rows between current row and {{ history_size - 1 }} following
    )
),

after_each_second as (
    -- Ratings given in the same second become visible together: keep the state after the last of them.
    select * from windowed
    where next_rated_at is distinct from rated_at
),

genre_keys_ranked_0 as (
    -- Each genre's sort key: count * 32 + (31 - its place in the sorted vocabulary). Keys are distinct, larger
    -- means more positives (ties: earlier name), key % 32 names the genre back and key < 32 means no positive.
    select
        *,
        {%- for pack in packs %}
        {%- set pack_index = loop.index %}
        {%- set pack_last = loop.last %}
        {%- for genre in pack %}
        ((positive_genre_counts_{{ pack_index }} >> {{ genre_bits * loop.index0 }}) & {{ 2 ** genre_bits - 1 }}) * 32
            + {{ 31 - (pack_index - 1) * genres_per_integer - loop.index0 }} as genre_key_{{ (pack_index - 1) * genres_per_integer + loop.index }}{{ "," if not (pack_last and loop.last) }}
        {%- endfor %}
        {%- endfor %}
    from after_each_second
),

{% for rank in range(1, 6) -%}
genre_keys_ranked_{{ rank }} as (
    -- Genre number {{ rank }}: the largest key{{ " below number " ~ (rank - 1) if rank > 1 }}. A top 5 in scalar
    -- expressions: at 25M rows, sorting a list per row took 40 s of this model's 62.
    select
        *,
        greatest(
            {%- for genre in genres %}
            {%- if rank == 1 %}
            genre_key_{{ loop.index }}{{ "," if not loop.last }}
            {%- else %}
            case when genre_key_{{ loop.index }} < top_genre_key_{{ rank - 1 }} then genre_key_{{ loop.index }} else 0 end{{ "," if not loop.last }}
            {%- endif %}
            {%- endfor %}
        ) as top_genre_key_{{ rank }}
    from genre_keys_ranked_{{ rank - 1 }}
),

{% endfor -%}

top_genres as (
    select
        *,
        {%- for rank in range(1, 6) %}
        case when top_genre_key_{{ rank }} >= 32 then
            case top_genre_key_{{ rank }} % 32
                {%- for genre in genres %} when {{ 31 - loop.index0 }} then '{{ genre }}'{% endfor %}
            end
        end as user_genre_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from genre_keys_ranked_5
),

profiles as (
    select
        user_id,
        rated_at + 1 as valid_from,
        rated_at as user_last_rated_at,
        user_rating_count,
        -- Integer sums divided as doubles (a 2.0 literal would make a DECIMAL in Spark).
        cast(half_star_sum as double) / (2 * user_rating_count) as user_avg_rating,
        case when user_rating_count > 1 then sqrt(
            cast(user_rating_count * half_star_square_sum - half_star_sum * half_star_sum as double)
            / (4 * user_rating_count * (user_rating_count - 1))
        ) end as user_rating_stddev,
        case when year_count > 0 then cast(year_sum as double) / year_count end as user_avg_release_year,
        case when year_count > 1 then sqrt(
            cast(year_count * year_square_sum - year_sum * year_sum as double) / (year_count * (year_count - 1))
        ) end as user_release_year_stddev,
        -- The lists of the flat columns: their non-null values come first, so a slice drops the nulls.
        {%- for name, prefix in [("user_liked_movie_ids", "user_liked_movie_"), ("user_genres", "user_genre_")] %}
        {%- set items = [] %}{% set present = [] %}
        {%- for rank in range(1, 6) %}{% do items.append(prefix ~ rank) %}{% do present.append("(" ~ prefix ~ rank ~ " is not null)::int") %}{% endfor %}
        {{ list_head(items, present | join(' + ')) }} as {{ name }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        user_liked_movie_{{ rank }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        user_genre_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from top_genres
),

no_history as (
    select
        users.user_id,
        data_set.started_at as valid_from,
        cast(null as bigint) as user_last_rated_at,
        cast(0 as bigint) as user_rating_count,
        cast(null as double) as user_avg_rating,
        cast(null as double) as user_rating_stddev,
        cast(null as double) as user_avg_release_year,
        cast(null as double) as user_release_year_stddev,
        {{ empty_list('integer') }} as user_liked_movie_ids,
        {{ empty_list('varchar') }} as user_genres,
        {%- for rank in range(1, 6) %}
        cast(null as integer) as user_liked_movie_{{ rank }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        cast(null as string) as user_genre_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from (select distinct user_id from ratings) as users
    cross join data_set
),

final as (
    select
        *,
        -- Feast reads time as a timestamp.
        {{ epoch_to_timestamp('valid_from') }} as valid_from_timestamp
    from (
        select * from profiles
        union all
        select * from no_history
    )
)

select * from final
