"""Pure domain: pydantic entities, enums, money rules. Imports nothing that does I/O."""
