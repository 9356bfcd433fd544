"""EHR connector: configuration, HTTP client and auth, schedules, inbound poll, scheduler."""
