-- Dictionaries over the dimensions, for dictGet instead of a join. The engines' dimension sync reloads
-- them every LOGPIPE_DIM_SYNC_S; their LIFETIME reloads them when no engine runs.
CREATE DICTIONARY IF NOT EXISTS {{database}}.dict_service
(
    service     String,
    tier        String DEFAULT '',
    team        String DEFAULT '',
    owner       String DEFAULT '',
    first_seen  DateTime64(3, 'UTC')
)
PRIMARY KEY service
SOURCE(CLICKHOUSE({{dictionary_user}}QUERY 'SELECT service, tier, team, owner, first_seen FROM {{database}}.dim_service'))
LIFETIME(MIN 300 MAX 600)
LAYOUT(COMPLEX_KEY_HASHED())
