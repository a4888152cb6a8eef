-- The network of a docker job's container (`"network"` of its environment):
-- NULL for Docker's default.
ALTER TABLE jobs ADD COLUMN network TEXT;
