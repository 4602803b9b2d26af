-- Minutes whose rollup inputs changed but whose occupancy_minute row is not recomputed yet.
--
-- Why a table and not memory: the occupancy worker marks minutes here in the same
-- transaction that changes wifi_sessions, and recomputes them (deleting the marks) at most
-- once a second per site instead of on every batch. A crash between the two leaves the marks
-- committed, so whichever worker runs next still recomputes them: rollups stay exact after
-- kill -9 while the costly per-minute count(DISTINCT client) runs a fraction as often.
CREATE TABLE occupancy_dirty (
    site    text        NOT NULL,
    minute  timestamptz NOT NULL,
    PRIMARY KEY (site, minute)
);
