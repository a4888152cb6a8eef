-- Agent identity and trust: an agent is known by a key (this project's
-- agents), by a generated id (built-in agents) or, for the original's
-- agents, by its address, which must be its IP address.
-- kind: 0 = address-only (the original's agent), 1 = keyed, 2 = built-in.
ALTER TABLE agents ADD COLUMN kind BIGINT NOT NULL DEFAULT 0;
-- sha256 (hex) of the agent's current key; NULL for other kinds.
ALTER TABLE agents ADD COLUMN key_hash TEXT;
-- An administrator (re-)authorized the agent: its next call gets a new key.
ALTER TABLE agents ADD COLUMN key_issue BOOLEAN NOT NULL DEFAULT FALSE;
-- The generated identity of a built-in agent (kept in its work dir).
ALTER TABLE agents ADD COLUMN uid TEXT;
DROP INDEX agents_address;
CREATE UNIQUE INDEX agents_address_only ON agents(address) WHERE kind = 0;
CREATE UNIQUE INDEX agents_key ON agents(key_hash) WHERE key_hash IS NOT NULL;
CREATE UNIQUE INDEX agents_uid ON agents(uid) WHERE uid IS NOT NULL;
-- Built-in agents of earlier versions were known by their name alone (the
-- same for every server on a host); they return with a generated identity.
UPDATE agents SET deleted = CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT), authorized = FALSE, job_id = NULL
    WHERE deleted IS NULL AND (address LIKE 'builtin-%@%' OR address LIKE 'in-process@%');
