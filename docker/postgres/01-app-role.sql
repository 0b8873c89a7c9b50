-- Runs once, when the postgres container initialises an empty data directory.
-- The application role that route-delivery switches to (SET LOCAL ROLE pulse_app) for every
-- dead-letter insert, so row-level security applies even though it connects as the owner `iot`.
-- The daemon applies config/schema.sql at start-up (dead_letter.postgres.migrate) and grants this
-- role SELECT and INSERT on dead_letter_messages; it would create the role itself if it were
-- missing, but an operator usually manages roles.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pulse_app') THEN
    CREATE ROLE pulse_app NOLOGIN;
  END IF;
END
$$;
