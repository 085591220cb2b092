"""The vehicle registry: look a plate up (class, designated station, contract)."""
