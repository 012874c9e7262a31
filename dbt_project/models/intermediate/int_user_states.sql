{#-
  Each user's features just before each second in which they rated, and once more after their last rating: one row
  per (user, second they rated in), plus one closing row per user (rated_at one second after their last rating).
  The features are user_profiles' (SparrowRecSys's user features) over the user's last `user_history_size` ratings
  strictly before that second, so every rating of the second sees them. rating_examples joins each event to its row
  by (user_id, rated_at), without a point-in-time join of 25M wide rows (148 s of a 400 s build at 25M ratings);
  user_profiles is these rows, valid from just after the user's previous second.

  Built in one sort: every window below shares one ordering (newest first), whose frame "the history_size rows after
  the current one" is the user's window of recent ratings before it; the first rating of each second is the row
  whose window is exactly the ratings before the second (ties in a second are ordered by movie_id).
  - Means and standard deviations come from integer sums (half stars, years), exact, so they do not drift.
  - The 20 per-genre counts of positive ratings travel as 3 packed integers (7 bits per genre, at most 9
    genres per integer): 3 window sums instead of 20. A count never exceeds history_size <= 127, so the
    packed fields never carry into each other.
  - The top 5 genres and the last 5 liked movies are scalar columns (user_profiles makes the lists of them).
-#}
{%- set genres = var('movielens_genres') | sort -%}
{%- set history_size = var('user_history_size') | int -%}
{%- set liked_movie_count = 5 -%}
{%- set genre_bits = 7 -%}
{%- set genres_per_integer = 9 -%}
{%- set packs = genres | batch(genres_per_integer) | list -%}
{%- if history_size >= 2 ** genre_bits -%}
{{ exceptions.raise_compiler_error("int_user_states packs genre counts in " ~ genre_bits ~ " bits: var user_history_size must be below " ~ 2 ** genre_bits) }}
{%- endif -%}
{%- if genres | length > 32 -%}
{{ exceptions.raise_compiler_error("int_user_states names a genre by 5 bits of its sort key: at most 32 genres in var movielens_genres") }}
{%- endif %}

with

ratings as (
    select * from {{ ref('int_ratings_sequenced') }}
),

moments as (
    select user_id, movie_id, rating, rated_at, is_positive, release_year, user_rating_seq
    from ratings
    union all
    -- The closing moment: after the user's last rating, so that its state (user_profiles' latest row) is here too.
    select
        user_id,
        cast(null as integer) as movie_id,
        cast(null as double) as rating,
        rated_at + 1 as rated_at,
        false as is_positive,
        cast(null as integer) as release_year,
        user_rating_seq + 1 as user_rating_seq
    from ratings
    where user_rating_seq = user_rating_total
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

windowed as (
    select
        moments.user_id,
        moments.rated_at,
        -- The user's rating before this one, in time (lead takes no frame: its own window, with before's partition
        -- and order, so the same sort).
        lead(moments.rated_at) over newest_first as user_last_rated_at,
        -- bigint on both engines (Spark's row_number is an int).
        cast(least(moments.user_rating_seq - 1, {{ history_size }}) as bigint) as user_rating_count,
        sum(cast(moments.rating * 2 as bigint)) over before as half_star_sum,
        sum(cast(moments.rating * 2 as bigint) * cast(moments.rating * 2 as bigint)) over before as half_star_square_sum,
        count(moments.release_year) over before as year_count,
        sum(cast(moments.release_year as bigint)) over before as year_sum,
        sum(cast(moments.release_year as bigint) * moments.release_year) over before as year_square_sum,
        {%- for pack in packs %}
        coalesce(cast(sum(case when moments.is_positive then bits.genre_bits_{{ loop.index }} else 0 end) over before
            as bigint), 0) as positive_genre_counts_{{ loop.index }},
        {%- endfor %}
        {%- for rank in range(1, liked_movie_count + 1) %}
        {{ nth_non_null('case when moments.is_positive then moments.movie_id end', rank) }} over before
            as user_liked_movie_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from moments
    left join movie_genre_bits as bits on moments.movie_id = bits.movie_id
    window
        newest_first as (partition by moments.user_id order by moments.user_rating_seq desc),
        before as (
            partition by moments.user_id order by moments.user_rating_seq desc
            rows between 1 following and {{ history_size }} following
        )
),

states as (
    -- The first rating of each second, and each closing moment: its window is the ratings before the second.
    select * from windowed
    where user_last_rated_at is distinct from rated_at
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
    from states
),

{% for rank in range(1, 6) -%}
genre_keys_ranked_{{ rank }} as (
    -- Genre number {{ rank }}: the largest key{{ " below number " ~ (rank - 1) if rank > 1 }}. A top 5 in scalar
    -- expressions: at 25M rows, sorting a list per row took 40 s of user_profiles' 62 (when it held this pass).
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

final as (
    select
        user_id,
        rated_at,
        user_last_rated_at,
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
        {%- for rank in range(1, liked_movie_count + 1) %}
        user_liked_movie_{{ rank }},
        {%- endfor %}
        {%- for rank in range(1, 6) %}
        case when top_genre_key_{{ rank }} >= 32 then
            case top_genre_key_{{ rank }} % 32
                {%- for genre in genres %} when {{ 31 - loop.index0 }} then '{{ genre }}'{% endfor %}
            end
        end as user_genre_{{ rank }}{{ "," if not loop.last }}
        {%- endfor %}
    from genre_keys_ranked_5
)

select * from final
