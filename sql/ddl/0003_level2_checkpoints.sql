-- Level-2 recomputation of late 1-sps data (issue 13, processor side). A late
-- sample changes every 300 s output after it (causal filters, segment first
-- values, the running offset total), so the processor keeps, per site, the
-- level2.Machine state at every UTC hour boundary of the recompute window:
-- a late sample at t restores the newest checkpoint at or before t and
-- replays the site's stored counts (gtsm_etl) from there. Written in the same
-- transaction as level2_state and kafka_offsets.
CREATE TABLE level2_checkpoint (
    site     VARCHAR NOT NULL,
    "time"   BIGINT  NOT NULL, -- unix seconds: the state after every sample before it (0: a fresh machine)
    state    BLOB    NOT NULL, -- level2.Machine.MarshalBinary
    PRIMARY KEY (site, "time")
);

-- The last second pushed into the site's machine (level2_state.state), so a
-- restarted processor tells a late sample from a new one.
ALTER TABLE level2_state ADD COLUMN last_second BIGINT;
