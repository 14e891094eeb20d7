"""The watchdog: rules over the pipeline's health, metrics and data; alerts to Slack, webhooks, console."""
