CREATE DICTIONARY IF NOT EXISTS {{database}}.dict_host
(
    host        String,
    region      String DEFAULT ''
)
PRIMARY KEY host
SOURCE(CLICKHOUSE({{dictionary_user}}QUERY 'SELECT host, region FROM {{database}}.dim_host'))
LIFETIME(MIN 300 MAX 600)
LAYOUT(COMPLEX_KEY_HASHED())
