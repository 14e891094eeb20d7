"""Who may do what: access tokens of three roles (ingest, read, admin), checked on every route but /ping."""
