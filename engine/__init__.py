"""The trio engine: intake, validation, journal, scheduling onto registers, recovery, the CLI."""
