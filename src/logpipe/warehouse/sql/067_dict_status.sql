CREATE DICTIONARY IF NOT EXISTS {{database}}.dict_status
(
    status      UInt64,
    class       String DEFAULT '',
    reason      String DEFAULT '',
    is_error    UInt8 DEFAULT 0
)
PRIMARY KEY status
SOURCE(CLICKHOUSE({{dictionary_user}}QUERY 'SELECT status, class, reason, is_error FROM {{database}}.dim_status FINAL'))
LIFETIME(MIN 3600 MAX 7200)
LAYOUT(FLAT())
