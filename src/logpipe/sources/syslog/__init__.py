"""The syslog source: RFC 5424 and RFC 3164 messages over UDP and TCP (octet counting or newlines)."""
