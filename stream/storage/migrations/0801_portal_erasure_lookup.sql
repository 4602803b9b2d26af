-- Every landing batch the portal writes checks that no completed erasure already covers
-- its client ids (api/portal/store.py land_many); completed erasures pile up over the
-- years, so that lookup gets its own small partial index.
CREATE INDEX IF NOT EXISTS portal_dsr_erased
    ON portal_dsr (client_id, completed_at)
    WHERE kind = 'erasure' AND status = 'completed';
