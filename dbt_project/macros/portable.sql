{#-
  The DuckDB constructs the models use that Spark SQL (4.3) writes otherwise, one macro each, dispatched on the
  adapter: default__ is DuckDB's form (the engine of `make run`), spark__ Spark's (ENGINE=spark). Everything else in
  the models is common to both (QUALIFY, `anti join`, `nth_value(...) ignore nulls over`, `::` casts, `>>`, `%`).
  tests/integration/test_spark.py builds the bundled data with both and compares every mart row for row.
-#}

{#- list_contains(genres, 'Drama') -#}
{% macro list_has(list, value) %}{{ return(adapter.dispatch('list_has', 'eaglerec')(list, value)) }}{% endmacro %}
{% macro default__list_has(list, value) %}list_contains({{ list }}, {{ value }}){% endmacro %}
{% macro spark__list_has(list, value) %}array_contains({{ list }}, {{ value }}){% endmacro %}

{#- The k-th element (1-based), null past the end (Spark's [] is 0-based and element_at fails past the end). -#}
{% macro list_at(list, k) %}{{ return(adapter.dispatch('list_at', 'eaglerec')(list, k)) }}{% endmacro %}
{% macro default__list_at(list, k) %}{{ list }}[{{ k }}]{% endmacro %}
{% macro spark__list_at(list, k) %}try_element_at({{ list }}, {{ k }}){% endmacro %}

{#- Split text on one literal character (Spark's split takes a regular expression). -#}
{% macro split_on(text, character) %}{{ return(adapter.dispatch('split_on', 'eaglerec')(text, character)) }}{% endmacro %}
{% macro default__split_on(text, character) %}string_split({{ text }}, '{{ character }}'){% endmacro %}
{% macro spark__split_on(text, character) %}split({{ text }}, '[{{ character }}]'){% endmacro %}

{#- A regular expression as a literal: Spark unescapes backslashes in plain literals, so it gets a raw one. -#}
{% macro regex(pattern) %}{{ return(adapter.dispatch('regex', 'eaglerec')(pattern)) }}{% endmacro %}
{% macro default__regex(pattern) %}'{{ pattern }}'{% endmacro %}
{% macro spark__regex(pattern) %}r'{{ pattern }}'{% endmacro %}

{#- A list of the expressions, then its first n elements. -#}
{% macro list_head(items, n) %}{{ return(adapter.dispatch('list_head', 'eaglerec')(items, n)) }}{% endmacro %}
{% macro default__list_head(items, n) %}[{{ items | join(', ') }}][1:{{ n }}]{% endmacro %}
{% macro spark__list_head(items, n) %}slice(array({{ items | join(', ') }}), 1, {{ n }}){% endmacro %}

{#- An empty list of a type (integer or varchar). -#}
{% macro empty_list(element_type) %}{{ return(adapter.dispatch('empty_list', 'eaglerec')(element_type)) }}{% endmacro %}
{% macro default__empty_list(element_type) %}cast([] as {{ element_type }}[]){% endmacro %}
{% macro spark__empty_list(element_type) %}cast(array() as array<{{ 'string' if element_type == 'varchar' else element_type }}>){% endmacro %}

{#- Epoch seconds as a UTC timestamp (the time column Feast reads). -#}
{% macro epoch_to_timestamp(seconds) %}{{ return(adapter.dispatch('epoch_to_timestamp', 'eaglerec')(seconds)) }}{% endmacro %}
{% macro default__epoch_to_timestamp(seconds) %}to_timestamp({{ seconds }}){% endmacro %}
{% macro spark__epoch_to_timestamp(seconds) %}timestamp_seconds({{ seconds }}){% endmacro %}

{#- Eight hex digits as an integer (the seeded random split). -#}
{% macro hex_to_integer(hex) %}{{ return(adapter.dispatch('hex_to_integer', 'eaglerec')(hex)) }}{% endmacro %}
{% macro default__hex_to_integer(hex) %}cast(('0x' || {{ hex }}) as ubigint){% endmacro %}
{% macro spark__hex_to_integer(hex) %}cast(conv({{ hex }}, 16, 10) as bigint){% endmacro %}

{#- The n-th non-null value of a window frame (the IGNORE NULLS goes inside the call in DuckDB, after it in Spark). -#}
{% macro nth_non_null(value, n) %}{{ return(adapter.dispatch('nth_non_null', 'eaglerec')(value, n)) }}{% endmacro %}
{% macro default__nth_non_null(value, n) %}nth_value({{ value }}, {{ n }} ignore nulls){% endmacro %}
{% macro spark__nth_non_null(value, n) %}nth_value({{ value }}, {{ n }}) ignore nulls{% endmacro %}

{#- All columns of a relation but some. -#}
{% macro star_except(relation, columns) %}{{ return(adapter.dispatch('star_except', 'eaglerec')(relation, columns)) }}{% endmacro %}
{% macro default__star_except(relation, columns) %}{{ relation }}.* exclude ({{ columns | join(', ') }}){% endmacro %}
{% macro spark__star_except(relation, columns) %}{{ relation }}.* except ({{ columns | join(', ') }}){% endmacro %}

{#-
  An aggregate: the values as a list, ordered by the expressions of `order_by` (all ascending, or all descending);
  `where` an optional filter. Spark has no ordered collect: it sorts structs whose first fields are the
  order keys (a struct sorts field by field) and keeps the value.
-#}
{% macro ordered_list(value, order_by, descending=false, where=none) %}{{ return(adapter.dispatch('ordered_list', 'eaglerec')(value, order_by, descending, where)) }}{% endmacro %}
{% macro default__ordered_list(value, order_by, descending, where) -%}
list({{ value }} order by {% for key in order_by %}{{ key }}{{ ' desc' if descending }}{{ ', ' if not loop.last }}{% endfor %})
{%- if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}
{% macro spark__ordered_list(value, order_by, descending, where) -%}
transform(sort_array(collect_list(struct({% for key in order_by %}{{ key }} as order_{{ loop.index }}, {% endfor %}{{ value }} as value))
{%- if where %} filter (where {{ where }}){% endif %}, {{ 'false' if descending else 'true' }}), item -> item.value)
{%- endmacro %}

{#-
  A point-in-time join clause: each row of `left` gets the row of `right` with the same key and the latest
  valid_from <= the left row's time (none: nulls). DuckDB has it built in (ASOF). Spark: the (key, time) pairs of
  `left` and the valid_froms of `right` in one sequence per key, profiles before events of the same second; the last
  valid_from seen is the match (last_value ignore nulls), then `right` is joined on equality.
  `left` and `right` are names of CTEs in the model; `right` gets the alias `right`'s name, as with DuckDB.
-#}
{% macro asof_left_join(left, right, key, time, valid_from='valid_from') %}{{ return(adapter.dispatch('asof_left_join', 'eaglerec')(left, right, key, time, valid_from)) }}{% endmacro %}
{% macro default__asof_left_join(left, right, key, time, valid_from) -%}
asof left join {{ right }}
        on {{ left }}.{{ key }} = {{ right }}.{{ key }}
        and {{ left }}.{{ time }} >= {{ right }}.{{ valid_from }}
{%- endmacro %}
{% macro spark__asof_left_join(left, right, key, time, valid_from) -%}
left join (
        select {{ key }}, at_time, matched_valid_from
        from (
            select
                {{ key }},
                at_time,
                is_event,
                last_value(candidate) ignore nulls over (
                    partition by {{ key }} order by at_time, is_event rows between unbounded preceding and current row
                ) as matched_valid_from
            from (
                select distinct {{ key }}, {{ time }} as at_time, 1 as is_event, cast(null as bigint) as candidate
                from {{ left }}
                union all
                select {{ key }}, {{ valid_from }}, 0, {{ valid_from }} from {{ right }}
            ) as sequence
        ) as matched
        where is_event = 1
    ) as {{ right }}_match
        on {{ left }}.{{ key }} = {{ right }}_match.{{ key }} and {{ left }}.{{ time }} = {{ right }}_match.at_time
    left join {{ right }}
        on {{ right }}_match.{{ key }} = {{ right }}.{{ key }}
        and {{ right }}_match.matched_valid_from = {{ right }}.{{ valid_from }}
{%- endmacro %}

{#-
  on-run-start: the raw files as tables, where the sources name them. DuckDB needs none (it reads each CSV through
  its source's meta.external_location). Spark creates one text-only CSV table per source (every column a string, as
  DuckDB's all_varchar; staging casts), from the path in that same external_location.
-#}
{% macro create_raw_tables() %}{{ return(adapter.dispatch('create_raw_tables', 'eaglerec')()) }}{% endmacro %}
{% macro default__create_raw_tables() %}{% endmacro %}
{% macro spark__create_raw_tables() %}
{%- if execute %}
{%- for source in graph.sources.values() if source.package_name == project_name %}
    {%- set location = source.config.meta.external_location or source.meta.external_location %}
    {%- set path = modules.re.search("read_csv\\('([^']+)'", location).group(1) | replace('{name}', source.name) %}
    {%- if not path.startswith('/') %}
    {{ exceptions.raise_compiler_error("source " ~ source.source_name ~ "." ~ source.name ~ ": Spark needs an absolute path (it would read " ~ path ~ " from its warehouse); eaglerec build-features --engine spark passes them") }}
    {%- endif %}
    {%- do run_query("create database if not exists " ~ source.schema) %}
    {%- do run_query("drop table if exists " ~ source.schema ~ "." ~ source.identifier) %}
    {%- do run_query("create table " ~ source.schema ~ "." ~ source.identifier ~ " using csv options (path '" ~ path
                     ~ "', header 'true', quote '\"', escape '\"')") %}
{%- endfor %}
{%- endif %}
{% endmacro %}
