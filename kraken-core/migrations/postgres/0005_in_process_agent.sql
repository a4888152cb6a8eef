-- The in-process agent (`kraken --db`, `kraken-tui --db`) was one agent per
-- process (`in-process@PID`), so every command added one; it is now one per
-- database and host, known by an id kept in its work dir. The per-process
-- ones are forgotten (a job one of them held is taken over by the recovery
-- pass as a dead agent's).
UPDATE agents SET deleted = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT, authorized = FALSE
    WHERE deleted IS NULL AND kind = 2 AND address LIKE 'in-process@%';
